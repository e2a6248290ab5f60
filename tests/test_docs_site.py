"""The documentation site, built and opened in a real browser.

One module-scoped build (``mkdocs build --strict`` into a temporary folder, every notebook
executed afresh against the current code), served on 127.0.0.1, then every page opened in
headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by selenium):

* the strict build succeeds (no warning: broken links, anchors, nav entries, notebooks);
* every page loads with no console error and fetches nothing from outside the site;
* math is typeset: each arithmatex element holds a MathJax container, no TeX error, no raw
  ``$$`` left in the text;
* every image has loaded (naturalWidth > 0), and every tutorial page shows its figures and
  its printed output;
* every internal link points at a file of the site, and its #fragment at an id on that page;
* the derivation pages are typeset: hundreds of MathJax formulas on backprop.html and
  models.html, none of them wider than the column;
* every tutorial figure has content (its pixels vary: not a blank or single-colour image);
* the results summary shows the tutorials' figures, by the names the notebooks give them,
  each with content, and its detail pages (reproductions/*.html) are in the site;
* nothing is wider than the text column on any page at 1280 px: no element sticks out of
  the article, no code block, table or formula needs a horizontal scroll bar, the page
  itself never scrolls sideways;
* search works when the site is opened from disk (file://, no server): typing a module
  name lists the pages that mention it, and nothing is fetched from outside the site.

Screenshots of the home page, a derivation page, an API page, a tutorial and the results
page are written to ``$TINYAE_DOCS_SCREENSHOTS`` when set (else into the temporary folder,
whose path the test prints).

Skipped, saying why, without the docs extra (``pip install -e ".[docs]"``) or Chromium
(``apt-get install chromium chromium-driver``).  About a minute on 2 cores, most of it the
notebooks.
"""
from __future__ import annotations

import functools
import html
import http.server
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.docs

_MISSING = [name for name in ("mkdocs", "material", "mkdocstrings_handlers.python", "jupytext", "nbclient",
                              "ipykernel", "selenium", "mathjax")
            if importlib.util.find_spec(name.split(".")[0]) is None]
if _MISSING:
    pytest.skip(f"docs extra not installed (missing: {', '.join(_MISSING)}); "
                'pip install -e ".[docs]"', allow_module_level=True)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not CHROMIUM or not CHROMEDRIVER:
    pytest.skip("headless Chromium not found (chromium and chromedriver on PATH); on Debian: "
                "apt-get install -y chromium chromium-driver", allow_module_level=True)

RESULTS_PAGES = ["reproductions/pytorch.html", "reproductions/keras.html",
                 "reproductions/pytorch-tutorials.html", "reproductions/differences.html"]
SHOTS = {"home": "index.html", "derivation": "backprop.html", "api": "api/nn.html#tinyae.nn.Linear",
         "notebook": "tutorials/denoising.html", "results": "results.html", "speed": "performance.html"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(site folder, build seconds): the strict build, notebooks executed with no cache."""
    tmp = tmp_path_factory.mktemp("docs")
    site = tmp / "site"
    env = dict(os.environ, TINYAE_DOCS_CACHE=str(tmp / "cache"), NO_MKDOCS_2_WARNING="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    log = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if "TCP without encryption" not in line)
    assert proc.returncode == 0, f"mkdocs build --strict failed ({proc.returncode}):\n{log[-6000:]}"
    print(f"\ndocs: mkdocs build --strict took {seconds:.1f} s")
    return site, seconds


@pytest.fixture(scope="module")
def server(built):
    site, _ = built
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


# Run in the page once MathJax (if any) has finished: what the tests assert on.
_INSPECT = r"""
const done = arguments[arguments.length - 1];
const ready = (window.MathJax && MathJax.startup && MathJax.startup.promise)
    ? MathJax.startup.promise : Promise.resolve();
ready.then(() => document.fonts.ready).then(() => {
  const math = Array.from(document.querySelectorAll(".arithmatex"));
  const body = document.querySelector("article") || document.body;
  const text = body.cloneNode(true);
  text.querySelectorAll("pre, code, script, mjx-container, mjx-assistive-mml").forEach(e => e.remove());
  done({
    title: document.title,
    mathjax: !!(window.MathJax && MathJax.version),
    math: math.length,
    typeset: math.filter(e => {
      const box = e.querySelector("mjx-container");
      return box && box.getBoundingClientRect().width > 0;
    }).length,
    mathFonts: Array.from(document.fonts).filter(f => f.family.startsWith("MJX"))
        .map(f => f.family + ": " + f.status),
    merrors: document.querySelectorAll("mjx-merror").length,
    // CHTML draws each glyph as ::before content; "none" means an empty box on screen
    blankGlyphs: Array.from(document.querySelectorAll("mjx-c")).slice(0, 200)
        .filter(c => getComputedStyle(c, "::before").content === "none").length,
    rawDollars: text.textContent.includes("$$"),
    images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
    outputs: document.querySelectorAll(".nb-output").length,
    outputText: Array.from(document.querySelectorAll(".nb-output pre")).map(e => e.textContent).join("\n"),
    resources: performance.getEntriesByType("resource").map(r => r.name),
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
    figures: figureSpread(),
    tooWide: tooWide(),
    pageScrollsSideways: document.documentElement.scrollWidth > document.documentElement.clientWidth,
  });
}, err => done({error: String(err)}));

// The grey-level standard deviation (0-255) of every figure a notebook produced (the
// tutorials' pages and the results page show them): a blank (single-colour) image gives 0.
function figureSpread() {
  return Array.from(document.images)
    .filter(i => /\/tutorials\/[^/]+\/[^/]+\.png$/.test(i.currentSrc || i.src) && i.naturalWidth > 0)
    .map(i => {
      const canvas = document.createElement("canvas");
      canvas.width = i.naturalWidth;
      canvas.height = i.naturalHeight;
      const g = canvas.getContext("2d");
      g.drawImage(i, 0, 0);
      const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
      let sum = 0, sq = 0, n = 0;
      for (let k = 0; k < px.length; k += 4) {
        const v = (px[k] + px[k + 1] + px[k + 2]) / 3;
        sum += v; sq += v * v; n += 1;
      }
      const mean = sum / n;
      return {src: i.currentSrc || i.src, std: Math.sqrt(Math.max(sq / n - mean * mean, 0))};
    });
}

// Everything wider than the text column: elements whose box ends right of the article, and
// boxes whose content needs a horizontal scroll bar (code, tables, formulas).
function tooWide() {
  const article = document.querySelector("article");
  if (!article) return [];
  // the column is .md-content: Material lets tables and admonition titles bleed 0.8 rem into
  // the article's side margins by design
  const column = document.querySelector(".md-content") || article;
  const limit = column.getBoundingClientRect().right + 1;
  const describe = (e, why) => `${why}: <${e.tagName.toLowerCase()}${e.className && typeof e.className === "string"
      ? " class=" + e.className.split(" ")[0] : ""}> ${(e.textContent || "").replace(/\s+/g, " ").trim().slice(0, 70)}`;
  const found = [];
  for (const e of article.querySelectorAll("*")) {
    if (e.closest("mjx-assistive-mml")) continue;      // MathJax's hidden copy for screen readers
    const box = e.getBoundingClientRect();
    if (box.width > 0 && box.right > limit) {
      found.push(describe(e, `ends ${Math.round(box.right - limit)} px right of the column`));
    } else if (e.matches("pre > code, table, .md-typeset__scrollwrap, .arithmatex")
               && e.scrollWidth > e.clientWidth + 1) {
      found.push(describe(e, `needs a scroll bar (${e.scrollWidth} px in ${e.clientWidth} px)`));
    }
  }
  return found;
}
"""


@pytest.fixture(scope="module")
def pages(built, server, browser, tmp_path_factory):
    """{page path: what the browser saw}, every page of the site opened once."""
    site, _ = built
    shots = pathlib.Path(os.environ.get("TINYAE_DOCS_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    seen = {}
    t0 = time.perf_counter()
    for path in sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")):
        browser.get(server + path)
        result = browser.execute_async_script(_INSPECT)
        result["console"] = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        for name, shot in SHOTS.items():
            if shot.split("#")[0] == path:
                if "#" in shot:
                    browser.get(server + shot)          # scrolled to the entry
                    browser.execute_async_script(_INSPECT)
                browser.save_screenshot(str(shots / f"{name}.png"))
                result["screenshot"] = shots / f"{name}.png"
        seen[path] = result
    print(f"docs: {len(seen)} pages opened in Chromium in {time.perf_counter() - t0:.1f} s; "
          f"screenshots in {shots}")
    return seen


def test_site_has_the_expected_pages(pages):
    expected = {"index.html", "backprop.html", "models.html", "data.html", "api/nn.html", "api/losses.html",
                "api/optim.html", "api/models.html", "api/data.html", "api/plot.html", "api/gradcheck.html",
                "tutorials/write_your_own_layer.html", "tutorials/vae_pytorch_example.html", "results.html",
                *RESULTS_PAGES}
    assert expected <= set(pages), f"missing pages: {sorted(expected - set(pages))}"
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("*.py")}
    assert {f"tutorials/{n}.html" for n in notebooks} <= set(pages)
    assert all("error" not in r for r in pages.values()), {p: r["error"] for p, r in pages.items() if "error" in r}


def test_pages_load_without_console_errors(pages):
    errors = {path: [e["message"] for e in r["console"]] for path, r in pages.items() if r["console"]}
    assert not errors, f"console errors: {errors}"


def test_nothing_is_fetched_from_outside_the_site(pages, server):
    outside = {path: [u for u in r["resources"] if not u.startswith(server)] for path, r in pages.items()}
    outside = {p: u for p, u in outside.items() if u}
    assert not outside, f"resources loaded from outside the site: {outside}"


def test_math_is_rendered_by_the_bundled_mathjax(pages, server):
    with_math = {p: r for p, r in pages.items() if r["math"]}
    # the home page, the tutorials and the VAE derivation in the docstrings all carry formulas
    assert {"index.html", "tutorials/vae_pytorch_example.html", "tutorials/write_your_own_layer.html"} <= set(with_math)
    for path, r in with_math.items():
        assert r["mathjax"], f"{path}: MathJax did not load"
        assert r["typeset"] == r["math"], f"{path}: {r['math'] - r['typeset']} of {r['math']} formulas not typeset"
        assert r["merrors"] == 0, f"{path}: {r['merrors']} TeX errors"
        assert r["blankGlyphs"] == 0, f"{path}: {r['blankGlyphs']} MathJax glyphs drawn as nothing"
        fonts = r["mathFonts"]      # declared lazily: "unloaded" ones were never needed
        assert not [f for f in fonts if f.endswith(": error")], f"{path}: MathJax fonts {fonts}"
        assert [f for f in fonts if f.startswith("MJXTEX") and f.endswith(": loaded")], f"{path}: {fonts}"
        assert any(u.startswith(server + "assets/mathjax/") for u in r["resources"]), path
    raw = [p for p, r in pages.items() if r["rawDollars"]]
    assert not raw, f"raw $$ left in the text of {raw}"


def test_every_image_loads(pages):
    broken = {p: [i["src"] for i in r["images"] if not i["ok"]] for p, r in pages.items()}
    broken = {p: b for p, b in broken.items() if b}
    assert not broken, f"images that did not load: {broken}"


def test_tutorials_show_their_outputs(pages):
    tutorials = {p: r for p, r in pages.items() if p.startswith("tutorials/") and p != "tutorials/index.html"}
    assert len(tutorials) >= 8
    for path, r in tutorials.items():
        assert r["outputs"] > 0 and "epoch 1/" in r["outputText"], f"{path}: no training log shown"
        figures = [i for i in r["images"] if "/tutorials/" in i["src"] and i["src"].endswith(".png")]
        assert figures and all(i["ok"] for i in figures), f"{path}: figures {figures}"
    own = tutorials["tutorials/write_your_own_layer.html"]["outputText"]
    assert "worst relative error:" in own
    assert "gradient check of BrokenScaledTanh() failed" in own and "weight[" in own   # the deliberate mistake
    assert "sign flip" in own                                                    # and its diagnosis


def test_internal_links_resolve(pages, built, server):
    site, _ = built
    ids = {}

    def anchors(file):
        if file not in ids:
            ids[file] = {html.unescape(m) for m in re.findall(r'\bid="([^"]+)"', file.read_text(encoding="utf-8"))}
        return ids[file]

    bad = []
    for path, r in pages.items():
        for href in r["links"]:
            if not href.startswith(server):
                continue
            url = urllib.parse.urlsplit(href)
            rel = urllib.parse.unquote(url.path[len(urllib.parse.urlsplit(server).path):]) or "index.html"
            target = site / rel
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                bad.append(f"{path} → {href} (no such file)")
            elif url.fragment and target.suffix == ".html" and urllib.parse.unquote(url.fragment) not in anchors(target):
                bad.append(f"{path} → {href} (no id {url.fragment!r})")
    assert not bad, "broken internal links:\n" + "\n".join(bad[:40])


def test_derivations_and_api_link_both_ways(pages, server):
    backprop = pages["backprop.html"]["links"]
    assert server + "api/nn.html#tinyae.nn.Linear" in backprop
    assert server + "api/conv_levels.html#tinyae.nn.reference" in backprop
    api = pages["api/nn.html"]["links"]
    assert any(link.startswith(server + "backprop.html#linear") for link in api)
    models = pages["models.html"]["links"]
    assert server + "api/models.html#tinyae.models.VAE" in models


def test_derivation_pages_are_typeset(pages):
    """The derivations are written in LaTeX: counted formulas, all typeset, none too wide."""
    for path, at_least in (("backprop.html", 250), ("models.html", 150)):
        r = pages[path]
        assert r["math"] >= at_least, f"{path}: {r['math']} formulas, expected at least {at_least}"
        assert r["typeset"] == r["math"] and r["merrors"] == 0, path


def test_tutorial_figures_are_not_blank(pages):
    tutorials = {p: r for p, r in pages.items() if p.startswith("tutorials/") and p != "tutorials/index.html"}
    figures = [(p, f) for p, r in tutorials.items() for f in r["figures"]]
    assert len(figures) >= 15, f"only {len(figures)} tutorial figures found"
    blank = [f"{p}: {f['src'].rsplit('/', 1)[-1]} (grey-level spread {f['std']:.1f})"
             for p, f in figures if f["std"] < 10]
    assert not blank, "tutorial figures without content:\n" + "\n".join(blank)


def test_results_summary_shows_the_tutorials_figures(pages, server):
    """The summary page embeds the tutorials' figures by their names (not fig_<cell>_<k>),
    all of them loaded and with content, and links to each detail page."""
    r = pages["results.html"]
    shown = [i for i in r["images"] if "/tutorials/" in i["src"]]
    assert len(shown) >= 6, f"results.html shows {len(shown)} tutorial figures: {shown}"
    assert all(i["ok"] for i in shown), shown
    assert not [i["src"] for i in shown if "/fig_" in i["src"]], "results.html uses a figure's cell-numbered name"
    spread = {f["src"].split("/tutorials/")[1]: f["std"] for f in r["figures"]}
    assert len(spread) == len(shown) and all(std >= 10 for std in spread.values()), spread
    for page in RESULTS_PAGES:
        assert server + page in r["links"], f"results.html does not link to {page}"


def test_nothing_is_wider_than_the_column(pages):
    wide = {p: r["tooWide"] for p, r in pages.items() if r["tooWide"]}
    sideways = [p for p, r in pages.items() if r["pageScrollsSideways"]]
    report = [f"{p}: {len(w)} element(s), e.g. {w[:3]}" for p, w in sorted(wide.items())]
    assert not wide and not sideways, ("wider than the text column at 1280 px:\n" + "\n".join(report[:30])
                                       + (f"\npages that scroll sideways: {sideways}" if sideways else ""))


def test_search_works_from_disk(built, browser):
    """Opened as files (file://, no server), search finds pages by module name and nothing
    is fetched from outside the site."""
    from selenium.webdriver.common.by import By

    site, _ = built
    browser.get((site / "index.html").as_uri())
    browser.get_log("browser")                           # start the console log here
    box = browser.find_element(By.CSS_SELECTOR, "input[data-md-component=search-query]")
    found = {}
    for query in ("gradcheck", "im2col"):
        box.click()
        box.clear()
        box.send_keys(query)
        deadline = time.monotonic() + 30
        items, meta = [], ""
        while time.monotonic() < deadline:
            meta = browser.find_element(By.CSS_SELECTOR, ".md-search-result__meta").text
            items = browser.find_elements(By.CSS_SELECTOR, ".md-search-result__item > a")
            if items:
                break
            time.sleep(0.2)
        found[query] = [urllib.parse.urlsplit(a.get_attribute("href")).path.rsplit("/", 1)[-1] for a in items]
        assert len(found[query]) >= 3, f"search for {query!r} from file:// listed {found[query]} ({meta!r})"
    assert "gradcheck.html" in found["gradcheck"], found
    assert "conv_levels.html" in found["im2col"], found
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    outside = [u for u in resources if not u.startswith("file://")]
    assert not outside, f"fetched from outside the site when opened from disk: {outside}"
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_screenshots_taken(pages):
    shots = [r["screenshot"] for r in pages.values() if "screenshot" in r]
    assert len(shots) == len(SHOTS)
    for shot in shots:
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, shot
