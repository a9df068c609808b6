"""The plugin's layer imports without a circle: plugin -> session -> outcomes, summary,
report, each reading the shared option table and stash keys from bn_invariants.options."""
from __future__ import annotations

from tools.import_graph import ROOT, imported

LAYER = sorted(p for p in (ROOT / "bn_invariants").glob("*.py") if p.stem != "__init__")


def graph() -> dict:
    """bn_invariants module -> the bn_invariants modules it imports (anywhere in it)."""
    names = {f"bn_invariants.{p.stem}": p for p in LAYER}
    return {name: {n for n in imported(path) if n in names and n != name}
            for name, path in names.items()}


def cycles(edges: dict) -> list:
    """Every import circle, as a list of modules (a depth-first search)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_plugin_layer_has_no_import_circle():
    assert cycles(graph()) == [], "modules of bn_invariants import each other in a circle"


def test_options_is_a_leaf():
    assert graph()["bn_invariants.options"] == set()
