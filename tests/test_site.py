"""The documentation site works offline: built with ``mkdocs build --strict``, it loads no
script, style or font from another host, and every formula is MathML made at build time."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tools import gen_docs
from tools.site_check import page_problems, site_problems

DOCS_EXTRA = "the docs extra is not installed: pip install -e \".[dev,docs]\""
pytest.importorskip("mkdocs", reason=DOCS_EXTRA)
pytest.importorskip("latex2mathml", reason=DOCS_EXTRA)
from tools.mathml_hook import MathError, render_math, to_mathml  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=gen_docs.ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, (f"mkdocs build --strict exit status={build.returncode}, "
                                   f"but should be 0:\n{build.stderr[-3000:]}")
    return out


def test_site_loads_nothing_remote_and_has_no_raw_tex(site):
    problems = site_problems(site)
    assert not problems, (f"offline problems in the built site={problems[:10]} "
                          f"({len(problems)} in all), but should be none")


def test_formulas_are_mathml(site):
    for page in ("index.html", "explainer/index.html", "catalogue/backward/index.html"):
        html = (site / page).read_text(encoding="utf-8")
        assert html.count("<math ") >= 1, f"MathML elements in {page}=0, but should be >= 1"
        assert 'class="arithmatex"' not in html, (
            f"{page} has an arithmatex wrapper left, but every formula should be MathML")


def test_checker_flags_remote_assets_and_raw_tex():
    page = ('<html><head><script src="https://cdn.example/mathjax.js"></script>'
            '<link rel="stylesheet" href="//fonts.example/css">'
            '<style>@font-face{src:url(https://fonts.example/a.woff2)}</style></head>'
            '<body><p>see \\(\\hat x\\)</p><a href="https://example.org">a link</a>'
            '<img src="img/local.png"><code>\\(kept in code\\)</code></body></html>')
    problems = page_problems(page)
    assert len(problems) == 4, (f"problems found={problems}, but should be the script, the "
                                f"stylesheet, the font and the raw TeX (not the link, the "
                                f"local image or the code)")


def test_hook_converts_and_refuses_unknown_commands():
    html = ('<p><span class="arithmatex">\\(a &lt; \\hat x\\)</span></p>'
            '<div class="arithmatex">\\[\\Big\\langle W, g\\Big\\rangle = 0\\]</div>')
    out = render_math(html)
    assert "arithmatex" not in out and out.count("<math ") == 2, (
        f"converted page={out[:300]!r}, but should hold two MathML formulas and no wrapper")
    assert "\\langle</mo>" not in out and "&#x027E8;" in out, (
        "a \\Big-sized \\langle=its TeX name, but should be the character U+27E8")
    with pytest.raises(MathError, match="unknown TeX command"):
        to_mathml("\\notacommand x", display="inline")


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="no chromium on PATH (Debian: apt-get install -y chromium); "
                           "bash tools/browser_check.sh does the full check")
def test_explainer_renders_math_in_a_headless_browser(site):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    run = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--proxy-server=127.0.0.1:9", "--dump-dom", (site / "explainer" / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = run.stdout
    assert "<math" in dom, (f"MathML elements in the explainer as chromium rendered it=0, "
                            f"but should be many [chromium exit {run.returncode}: "
                            f"{run.stderr[-500:]}]")
    problems = page_problems(dom)
    assert not problems, f"the explainer in chromium shows {problems[:5]}, but should show none"
