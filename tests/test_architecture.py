"""The layers of the suite (docs/architecture.md): the catalogue holds only families, each
registering at least one invariant and importing only the kernel, never a sibling."""
import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

from bn_invariants.invariants import REGISTRY, catalogue
from tools.import_graph import ROOT, imported, modules, sibling_imports

FAMILIES = sorted(f"{catalogue.__name__}.{m.name}" for m in pkgutil.iter_modules(catalogue.__path__))
KERNEL_ABOVE_CATALOGUE = {"bn_invariants.invariants", "bn_invariants.invariants.known_deviations"}
"""Kernel modules that read the registry after the catalogue has filled it."""


@pytest.mark.parametrize("module", FAMILIES)
def test_every_catalogue_module_registers_an_invariant(module):
    importlib.import_module(module)
    registered = [i.id for i in REGISTRY.values() if i.check.__module__ == module]
    assert registered, f"{module} registers no invariant: a library belongs in the kernel"


def test_no_catalogue_module_imports_another():
    assert sibling_imports() == []


def test_the_kernel_does_not_import_the_catalogue():
    offenders = [name for name, path in modules("invariants").items()
                 if name not in KERNEL_ABOVE_CATALOGUE
                 and any(n.startswith("bn_invariants.invariants.catalogue") for n in imported(path))]
    assert offenders == []


def test_strategies_know_nothing_of_invariants():
    offenders = [name for name, path in modules("strategies").items()
                 if any(n.startswith("bn_invariants.invariants") for n in imported(path))]
    assert offenders == []


def test_the_self_test_sees_a_sibling_import(tmp_path, monkeypatch):
    """The sibling check can fail: a family importing another is reported."""
    fake = tmp_path / "invariants" / "catalogue"
    fake.mkdir(parents=True)
    (fake / "a.py").write_text("from bn_invariants.invariants.catalogue.b import X\n")
    (fake / "b.py").write_text("X = 1\n")
    import tools.import_graph as graph
    monkeypatch.setattr(graph, "ROOT", tmp_path)
    assert graph.sibling_imports() == [("a", "b")]
    assert ast.parse(Path(ROOT, "invariants", "step.py").read_text())  # the real tree is intact


def _literal_streams(path):
    """(line, number) of every generator(N) or stream=N with N an integer literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            args = [a for a in node.args if getattr(node.func, "attr", "") == "generator"]
            args += [k.value for k in node.keywords if k.arg == "stream"]
            found += [(node.lineno, a.value) for a in args if isinstance(a, ast.Constant)]
    return found


def test_every_rng_stream_is_named_in_the_table():
    """Problem.generator(N) numbers come from strategies/streams.py, never a bare literal."""
    offenders = {str(path.relative_to(ROOT)): _literal_streams(path)
                 for folder in ("invariants", "invariants/catalogue", "strategies")
                 for path in (ROOT / folder).glob("*.py") if _literal_streams(path)}
    assert offenders == {}


def test_a_formula_renders_the_constants_the_code_uses(monkeypatch):
    from bn_invariants.invariants import bounds
    assert bounds.tex(r"@{SAFETY}u_{acc} + @{MAP_ROUNDINGS}u_{out}, @{ULPS}\,\mathrm{ulp}") == (
        r"4u_{acc} + 6u_{out}, 2\,\mathrm{ulp}")
    monkeypatch.setitem(bounds.FORMULA_CONSTANTS, "SAFETY", 5.0)
    assert bounds.tex(r"@{SAFETY}u") == "5u"
    with pytest.raises(KeyError):
        bounds.tex("@{UNKNOWN}")
