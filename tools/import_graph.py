"""The import graph of the suite's layers: modules per layer and sibling imports.

    python3 -m tools.import_graph          # a table, then every catalogue sibling import
    python3 -m tools.import_graph --json   # the same as JSON

Layers: ``kernel`` (modules directly under invariants/), ``catalogue`` (invariants/catalogue/),
``strategies``, ``zoo`` (bn_invariants/zoo/).  A sibling import is a catalogue module importing
another catalogue module (the catalogue's families import only the kernel and strategies).
Imports are read from the source (every ``import`` statement, also inside functions).
"""
from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"kernel": "invariants", "catalogue": "invariants/catalogue", "strategies": "strategies",
          "zoo": "bn_invariants/zoo"}
PACKAGE = {"invariants": "bn_invariants.invariants", "invariants/catalogue": "bn_invariants.invariants.catalogue",
           "strategies": "bn_invariants.strategies", "bn_invariants/zoo": "bn_invariants.zoo"}


def modules(folder: str) -> dict[str, Path]:
    """Dotted module name -> file for the .py files directly in ``folder``."""
    package = PACKAGE[folder]
    out = {}
    for path in sorted((ROOT / folder).glob("*.py")):
        out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def imported(path: Path) -> set[str]:
    """The dotted names ``path`` imports (``from a.b import c`` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sibling_imports() -> list[tuple[str, str]]:
    """(importer, imported) pairs of catalogue modules importing catalogue modules."""
    catalogue = modules("invariants/catalogue")
    leaves = {name for name in catalogue if not name.endswith(".catalogue")}
    pairs = []
    for name in sorted(leaves):
        for target in sorted(imported(catalogue[name]) & leaves - {name}):
            pairs.append((name.rsplit(".", 1)[1], target.rsplit(".", 1)[1]))
    return pairs


def graph() -> dict:
    """Modules per layer, their lines, and the catalogue's sibling imports."""
    layers = {}
    for layer, folder in LAYERS.items():
        found = modules(folder)
        layers[layer] = {"modules": len(found),
                         "lines": sum(len(p.read_text(encoding="utf-8").splitlines())
                                      for p in found.values())}
    pairs = sibling_imports()
    return {"layers": layers, "sibling_imports": len(pairs),
            "siblings": [f"{a} -> {b}" for a, b in pairs]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the graph as JSON")
    args = parser.parse_args(argv)
    found = graph()
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for layer, row in found["layers"].items():
        print(f"{layer:<11} {row['modules']:>3} modules {row['lines']:>6} lines")
    print(f"sibling imports in the catalogue: {found['sibling_imports']}")
    for pair in found["siblings"]:
        print(f"  {pair}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
