"""Every option of every tool and benchmark has help text (``--help`` explains it)."""
from __future__ import annotations

import ast

import pytest

from tools.gen_docs import ROOT

SCRIPTS = sorted([*ROOT.glob("tools/*.py"), *ROOT.glob("benchmarks/*.py")])


def options_without_help(source: str) -> list[str]:
    """The first name of each ``add_argument(...)`` call in ``source`` that has no
    ``help=``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"
                and not any(k.arg == "help" for k in node.keywords)):
            first = node.args[0] if node.args else None
            out.append(first.value if isinstance(first, ast.Constant) else "?")
    return out


def test_the_scan_finds_a_missing_help():
    source = "p.add_argument('--a', help='x')\np.add_argument('--b', type=int)\n"
    assert options_without_help(source) == ["--b"], "options without help should be ['--b']"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_option_has_help(script):
    missing = options_without_help(script.read_text(encoding="utf-8"))
    assert not missing, (f"options of {script.relative_to(ROOT)} without help={missing}, but "
                         f"every option should say what it does")
