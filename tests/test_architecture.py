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
