"""The results pages as files, without building the site (seconds): the figures the summary
embeds are ones a notebook shows by that name, reproduce.py's markers sit in the pages it
writes, every page is in the nav, and the prose carries no development history.
(tests/test_docs_site.py builds the site and opens these pages in a browser.)"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SUMMARY = DOCS / "results.md"
DETAILS = sorted((DOCS / "reproductions").glob("*.md"))


def test_detail_pages_exist_and_are_in_the_nav():
    names = {p.name for p in DETAILS}
    assert {"pytorch.md", "keras.md", "pytorch-tutorials.md", "differences.md"} <= names
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in ["results.md", *(f"reproductions/{n}" for n in names)]:
        assert re.search(rf":\s*{re.escape(page)}\s*$", nav, re.M), f"{page} is not in mkdocs.yml's nav"


def test_summary_figures_are_named_figures_of_the_notebooks():
    """Each ![...](tutorials/NAME/FILE.png) on the summary is a figure that notebooks/NAME.py
    shows as display(Image("FILE.png")): the docs hook writes it under that name."""
    refs = re.findall(r"\]\((tutorials/([\w-]+)/([\w.-]+\.png))\)", SUMMARY.read_text())
    assert len(refs) >= 6, refs
    for _, stem, name in refs:
        assert not name.startswith("fig_"), f"{name}: a cell-numbered name changes when cells move"
        notebook = ROOT / "notebooks" / f"{stem}.py"
        assert notebook.is_file(), f"no notebook {notebook.name} for {stem}/{name}"
        assert re.search(rf"""Image\(\s*["']{re.escape(name)}["']""", notebook.read_text()), \
            f"notebooks/{stem}.py shows no figure named {name}"


@pytest.mark.parametrize("page, begin, end", [
    ("pytorch.md", "<!-- reproduce:begin -->", "<!-- reproduce:end -->"),
    ("keras.md", "<!-- reproduce-keras:begin -->", "<!-- reproduce-keras:end -->"),
])
def test_reproduce_markers_are_where_reproduce_writes(page, begin, end):
    text = (ROOT / "benchmarks" / "reproduce.py").read_text()
    assert f'"docs" / "reproductions" / "{page}"' in text, f"reproduce.py's --markdown does not default to {page}"
    page_text = (DOCS / "reproductions" / page).read_text()
    assert page_text.count(begin) == 1 and page_text.count(end) == 1
    assert page_text.index(begin) < page_text.index(end)
    assert begin not in SUMMARY.read_text()


@pytest.mark.parametrize("path", [SUMMARY, *DETAILS], ids=lambda p: p.relative_to(DOCS).as_posix())
def test_no_development_history_in_the_results_pages(path):
    text = path.read_text()
    assert not re.search(r"\(issues? \d+|\bissue[- ]\d+", text, re.I), f"{path.name} names an issue"
    assert not re.search(r"\bcommit [0-9a-f]{7,40}\b|`[0-9a-f]{7,40}`", text), f"{path.name} names a commit"
    assert not re.search(r"\b(a later|an earlier|this) session\b", text, re.I), f"{path.name} narrates sessions"


def _fake_result(setup, ref, title):
    """A one-epoch record shaped as benchmarks/reproduce.py's result_record writes it."""
    times = {"train_s": 1.0, "test_s": 0.1}
    return {"setup": setup, "title": title, "unit": "per-pixel MSE", "batch": 200, "reference": ref,
            "epochs": 1, "published_epochs": 50, "n_train": 60000, "n_test": 10000, "seed": 0, "threads": 1,
            "subset": "full", "vae_twin": None, "source": "a tutorial", "note": "", "stopped": "",
            "rows": [{"split": "test", "epoch": 1, "published_epoch": 1, "published": None, "published_text": "",
                      ref: 0.05, "tinyae": 0.0501, f"{ref}_rev": None}],
            "max_abs_diff_pct": {"train": 0.1, "test": 0.2},
            "seconds_per_epoch": {"tinyae": times, ref: times}, "wall_s": {"tinyae": 1.1, ref: 1.1},
            "history": [{"epoch": 1, "tinyae": {"train": 0.06, "test": 0.0501}, ref: {"train": 0.06, "test": 0.05}}],
            "command": "python benchmarks/reproduce.py --markdown", "date": "2026-12-07 12:00 UTC",
            "version": "9.9.9", "code": "0123abc",
            "machine": {"cpu": "a CPU", "cores": 2, "load": "1.0", "python": "3", "numpy": "2", "blas": "blas",
                        "torch": "2", "keras": None}}


def test_reproduce_writes_each_block_into_its_page(tmp_path, monkeypatch):
    """--markdown FILE FILE: each reference's block replaces the one between its markers, in
    whichever file holds them; the run line names the tinyae version, the commit is folded
    into the provenance note."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    reproduce = pytest.importorskip("reproduce")
    torch_md, keras_md = tmp_path / "pytorch.md", tmp_path / "keras.md"
    torch_md.write_text("# T\n\nbefore\n\n<!-- reproduce:begin -->\nold\n<!-- reproduce:end -->\n\nafter\n")
    keras_md.write_text("# K\n\n<!-- reproduce-keras:begin -->\nold\n<!-- reproduce-keras:end -->\n\nafter\n")
    results = [_fake_result("ae-784-250-16", "torch", "Dense AE"), _fake_result("keras-conv-ae", "keras", "Conv AE")]
    written = reproduce.write_markdown([keras_md, torch_md], results)
    assert sorted(written) == sorted([torch_md, keras_md])
    t, k = torch_md.read_text(), keras_md.read_text()
    assert "\nold\n" not in t and "\nold\n" not in k
    assert t.startswith("# T\n\nbefore\n") and t.rstrip().endswith("after")
    assert "### Published vs PyTorch vs tinyae" in t and "Keras" not in t.split("<!-- reproduce:end -->")[0]
    assert "### Published vs Keras vs tinyae" in k
    run_line = next(line for line in t.splitlines() if line.startswith("* **Dense AE**"))
    assert "tinyae 9.9.9" in run_line and "0123abc" not in run_line
    folded = t[t.index('<details markdown="1"><summary>Provenance'):]
    assert "Checkout `0123abc`: Dense AE." in folded.split("</details>")[0]
    assert "* Machine: a CPU" in folded.split("</details>")[0]
    assert reproduce.DOCS_MARKDOWN == [DOCS / "reproductions" / "pytorch.md", DOCS / "reproductions" / "keras.md"]
