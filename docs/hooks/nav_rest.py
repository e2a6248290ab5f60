"""MkDocs hook: a page in docs/ that mkdocs.yml's nav does not list still gets a place in
the navigation, under "More" — several people add pages, and a page nobody can reach
from the menu is as good as lost."""
from __future__ import annotations

from mkdocs.structure.nav import Navigation, Section


def on_nav(nav, config, files):
    listed = {page.file.src_uri for page in nav.pages}
    rest = [f.page for f in files.documentation_pages()
            if f.src_uri not in listed and f.page is not None]
    if not rest:
        return nav
    rest.sort(key=lambda page: page.file.src_uri)
    return Navigation(list(nav.items) + [Section("More", rest)], list(nav.pages) + rest)
