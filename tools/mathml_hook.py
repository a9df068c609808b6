"""An mkdocs hook that renders the site's TeX as MathML at build time.

``pymdownx.arithmatex`` (``generic: true``) wraps each formula of the Markdown as
``<span class="arithmatex">\\(...\\)</span>`` or ``<div class="arithmatex">\\[...\\]</div>``.
This hook replaces each with the MathML that ``latex2mathml`` produces, which every
current browser renders natively: no script, no font, no network. A formula that
``latex2mathml`` cannot convert stops the build, naming the page and the TeX.

mkdocs.yml loads it with ``hooks: [tools/mathml_hook.py]``.
"""
from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
BLOCK = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)
BARE_MATHCAL = re.compile(r"\\mathcal\s*([A-Za-z])")
UNKNOWN_COMMAND = re.compile(r">(\\[A-Za-z]+)<")
SIZED_DELIMITERS = {r"\langle": "&#x027E8;", r"\rangle": "&#x027E9;", r"\lVert": "&#x02016;",
                    r"\rVert": "&#x02016;", r"\|": "&#x02016;", r"\lvert": "|", r"\rvert": "|",
                    r"\{": "{", r"\}": "}"}
r"""latex2mathml writes a delimiter after ``\big``/``\Big``/... as its TeX name
(``<mo ...>\langle</mo>``); these are the characters it should have written."""


class MathError(ValueError):
    """A formula that latex2mathml cannot convert."""


def to_mathml(tex: str, *, display: str) -> str:
    """The MathML of one formula (``display`` is "inline" or "block"); ``tex`` is the
    HTML-escaped text arithmatex wrote."""
    source = html.unescape(tex).strip()
    # ``\mathcal X`` comes out as mathvariant="script", which browsers ignore;
    # ``\mathcal{X}`` comes out as the script letter itself.
    source_braced = BARE_MATHCAL.sub(r"\\mathcal{\1}", source)
    try:
        mathml = convert(source_braced, display=display)
    except Exception as exc:  # latex2mathml raises many types for bad input
        raise MathError(f"{type(exc).__name__}: {exc} in TeX {source!r}") from exc
    for name, char in SIZED_DELIMITERS.items():
        mathml = mathml.replace(f">{name}</mo>", f">{char}</mo>")
    # A bar of |x| between other terms is spaced as a binary operator ("max | x|");
    # as an absolute value it takes no space.
    mathml = mathml.replace('<mo stretchy="false">&#x0007C;</mo>',
                            '<mo stretchy="false" lspace="0" rspace="0">&#x0007C;</mo>')
    unknown = UNKNOWN_COMMAND.findall(mathml)
    if unknown:  # latex2mathml prints a command it does not know as text
        raise MathError(f"unknown TeX command {', '.join(unknown)} in TeX {source!r}")
    alt = html.escape(source, quote=True)
    return mathml.replace("<math ", f'<math alttext="{alt}" ', 1)


def render_math(page_html: str) -> str:
    """``page_html`` with every arithmatex formula replaced by MathML."""
    out = BLOCK.sub(lambda m: f'<div class="math-block">{to_mathml(m[1], display="block")}</div>',
                    page_html)
    return INLINE.sub(lambda m: to_mathml(m[1], display="inline"), out)


def on_page_content(html_text: str, page, config, files):  # noqa: ARG001 (mkdocs hook API)
    """mkdocs hook: convert the page's formulas after Markdown rendering."""
    from mkdocs.exceptions import PluginError
    try:
        return render_math(html_text)
    except MathError as exc:
        raise PluginError(f"{page.file.src_path}: {exc}") from exc
