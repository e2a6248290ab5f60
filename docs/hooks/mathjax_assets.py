"""MkDocs hook: ship MathJax inside the built site, so formulas render with no network.

MathJax 3 comes from the ``django-static-mathjax`` wheel on PyPI (a plain copy of the
MathJax 3.2 release; importing it needs no Django).  This hook adds the parts the site
uses to the build as ``assets/mathjax/...``: the ``tex-chtml.js`` bundle, the CommonHTML
fonts, the TeX extensions that ``autoload`` pulls in on demand, and the menu and
accessibility components.  ``docs/javascripts/mathjax-config.js`` configures it for
pymdownx.arithmatex's ``generic`` output.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

DEST = "assets/mathjax"
BUNDLE = "tex-chtml.js"
PARTS = ("output/chtml", "input/tex/extensions", "ui", "a11y", "sre", "adaptors")


def mathjax_dir() -> Path:
    """The ``es5`` folder of the installed MathJax copy, or a PluginError saying what to install."""
    spec = importlib.util.find_spec("mathjax")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            es5 = Path(root) / "static" / "mathjax" / "es5"
            if (es5 / BUNDLE).is_file():
                return es5
    raise PluginError("MathJax not found: the docs bundle MathJax from the 'django-static-mathjax' "
                      "package (expected mathjax/static/mathjax/es5/tex-chtml.js). Install the docs "
                      "extra: pip install -e \".[docs]\"")


def on_files(files, config):
    es5 = mathjax_dir()
    sources = [es5 / BUNDLE]
    for part in PARTS:
        sources += sorted(p for p in (es5 / part).rglob("*") if p.is_file())
    for src in sources:
        uri = f"{DEST}/{src.relative_to(es5).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=os.fspath(src)))
    return files
