"""Griffe extension for the API pages: show tinyae's plain-text docstrings as Markdown
without changing the source (they are written for ``help()``).

* A line ending in ``:`` followed by more-indented lines introduces a block of aligned
  math or shapes (``Backward, given dL/dy = dy (N, M):`` and the formulas under it).
  Markdown would fold those lines into the paragraph; a blank line before the block makes
  it a preformatted block, so the formulas keep their columns.
* ``:class:`DataLoader``` (also ``:func:``, ``:meth:``, ``:data:``, ``:mod:``, ``:attr:``,
  ``:exc:``) becomes inline code ```DataLoader``` (plain ``DataLoader`` inside a block);
  reST's ``Loading::`` becomes ``Loading:``.
"""
from __future__ import annotations

import re

from griffe import Extension

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|data|mod|attr|exc|obj):`~?([^`]+)`")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def markdown_docstring(text: str) -> str:
    out, in_block, prev = [], False, ""
    for line in text.split("\n"):
        blank = not line.strip()
        if in_block and not blank and _indent(line) < 4:
            in_block = False
            if out and out[-1].strip():
                out.append("")       # the text after a block starts a new paragraph
        if not in_block and not blank and _indent(line) >= 4 and prev.rstrip().endswith(":") \
                and _indent(prev) < 4:
            if out and out[-1].strip():
                out.append("")
            in_block = True
        elif not in_block and not blank and _indent(line) >= 4 and not prev.strip():
            in_block = True          # an indented block after a blank line: already a block
        if in_block:
            line = ROLE.sub(lambda m: m.group(1), line)
        else:
            line = ROLE.sub(lambda m: f"`{m.group(1)}`", line)
            line = re.sub(r"(?<=\S)::[ \t]*$", ":", line)     # reST's "literal block follows"
        out.append(line)
        if not blank:
            prev = line
    return "\n".join(out)


class PlainTextDocstrings(Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
