// MathJax 3 for pymdownx.arithmatex (generic mode): it wraps $...$ as \( \) and $$...$$
// as \[ \] inside elements of class "arithmatex"; typeset only those.  The MathJax files
// themselves are served from assets/mathjax/ (docs/hooks/mathjax_assets.py), never a CDN.
// No re-typesetting on Material's document$ (the site does not use instant navigation):
// clearing MathJax's output cache after the first typeset drops the glyphs' CSS, and the
// formulas then take up space but draw nothing (tests/test_docs_site.py checks the glyphs).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
