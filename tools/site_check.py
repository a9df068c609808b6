"""Check a built site for what would break it offline.

    python3 -m mkdocs build --strict --site-dir site && python3 -m tools.site_check site

Reports, and exits 1 on, any of:

* a remote asset: a script, stylesheet, font, image or frame loaded from another host
  (``<script src>``, ``<link href>``, ``<img src|srcset>``, ``<iframe|source|video|audio|
  embed src>``, ``<object data>``, CSS ``url(...)`` and ``@import`` in pages and
  stylesheets). Links a reader clicks (``<a href>``) are not assets and are allowed.
* TeX left unrendered: ``\\(``, ``\\[``, ``$$`` or ``$...$`` in a page's text (the formulas must have
  become MathML at build time, tools/mathml_hook.py).

Material's JavaScript bundle can also load two things from a CDN, only on demand: mermaid,
for a ``mermaid`` diagram (this site has none; the check fails on one), and a
ResizeObserver polyfill for browsers older than 2020.
"""
from __future__ import annotations

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
"""An absolute URL with a host: ``https://...``, ``http://...``, ``//host/...``."""
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""", re.I)
ASSET_ATTRIBUTES = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"),
                    "iframe": ("src",), "source": ("src", "srcset"), "video": ("src", "poster"),
                    "audio": ("src",), "embed": ("src",), "object": ("data",),
                    "input": ("src",), "track": ("src",)}
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\$[^$\s][^$\n]*\$")


def _urls(attribute: str, value: str) -> list[str]:
    if attribute == "srcset":
        return [part.strip().split()[0] for part in value.split(",") if part.strip()]
    return [value]


class _Page(HTMLParser):
    """Collects a page's asset URLs, its inline CSS, and its text outside code."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.assets: list[str] = []
        self.css: list[str] = []
        self.text: list[str] = []
        self.classes: list[str] = []
        self._skip = 0  # depth inside <code>, <pre>, <script>, <style>, <math>
        self._style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ASSET_ATTRIBUTES.get(tag, ()):
            if attrs.get(name):
                self.assets += _urls(name, attrs[name])
        if attrs.get("style"):
            self.css.append(attrs["style"])
        self.classes += (attrs.get("class") or "").split()
        if tag in ("code", "pre", "script", "style", "math"):
            self._skip += 1
        self._style = tag == "style"

    def handle_endtag(self, tag):
        if tag in ("code", "pre", "script", "style", "math"):
            self._skip = max(0, self._skip - 1)
        self._style = False

    def handle_data(self, data):
        if self._style:
            self.css.append(data)
        elif not self._skip:
            self.text.append(data)


def css_urls(css: str) -> list[str]:
    """The URLs a stylesheet loads (``url(...)`` and ``@import``)."""
    return [a or b for a, b in CSS_URL.findall(css)]


def page_problems(html: str) -> list[str]:
    """What in one page would need the network or shows unrendered TeX."""
    page = _Page()
    page.feed(html)
    urls = page.assets + [u for css in page.css for u in css_urls(css)]
    out = [f"remote asset {u}" for u in urls if REMOTE.match(u)]
    if "mermaid" in page.classes:
        out.append("a mermaid diagram (Material loads mermaid from a CDN)")
    text = "".join(page.text)
    out += [f"unrendered TeX near {text[max(0, m.start() - 30):m.end() + 30]!r}"
            for m in RAW_TEX.finditer(text)]
    return out


def site_problems(site: Path) -> list[str]:
    """Every problem of every page and stylesheet of the built site at ``site``."""
    out = []
    for path in sorted(site.rglob("*.html")):
        out += [f"{path.relative_to(site)}: {p}" for p in page_problems(path.read_text("utf-8"))]
    for path in sorted(site.rglob("*.css")):
        out += [f"{path.relative_to(site)}: remote asset {u}"
                for u in css_urls(path.read_text("utf-8")) if REMOTE.match(u)]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the folder mkdocs built (its --site-dir)")
    args = parser.parse_args(argv)
    pages = len(list(args.site.rglob("*.html")))
    if not pages:
        parser.error(f"{args.site} holds no HTML page: build the site first")
    problems = site_problems(args.site)
    for problem in problems:
        print(problem)
    if problems:
        print(f"site_check: {len(problems)} problems in {args.site}", file=sys.stderr)
        return 1
    print(f"site_check: {pages} pages in {args.site}, no remote asset, no unrendered TeX")
    return 0


if __name__ == "__main__":
    sys.exit(main())
