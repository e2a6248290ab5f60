"""MkDocs hook: a docs page may link to a file of the repository outside docs/ (say
``[benchmarks/README.md](../benchmarks/README.md)``), which works on a code host but is not
part of the site.  In the site such a link becomes the file's repository path in code
font, "(in the repository)".  A link to a path that exists nowhere is left alone, so
``mkdocs build --strict`` still reports it."""
from __future__ import annotations

import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^()\s#]+)(#[^()\s]*)?\)")


def on_page_markdown(markdown, page, config, files):
    docs = Path(config.docs_dir).resolve()
    here = posixpath.dirname(page.file.src_uri)

    def fix(match):
        text, target = match.group(1), match.group(2)
        if "://" in target or target.startswith(("mailto:", "/")):
            return match.group(0)
        path = (docs / here / target).resolve()
        if path.is_relative_to(docs) or not path.exists() or not path.is_relative_to(ROOT):
            return match.group(0)
        rel = path.relative_to(ROOT).as_posix()
        if text.strip("`") == rel:
            return f"`{rel}` (in the repository)"
        return f"{text} (`{rel}` in the repository)"

    return LINK.sub(fix, markdown)
