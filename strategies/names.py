"""Choosing among named alternatives (layouts, regimes, cotangents) in a fixed order."""
from __future__ import annotations

from hypothesis import strategies as st


def names_from(names: tuple, allowed) -> st.SearchStrategy[str]:
    """The names of ``names`` that ``allowed`` lists, in the order of ``names`` (so a
    draw shrinks towards the first); ValueError when ``allowed`` lists none of them."""
    ordered = [name for name in names if name in set(allowed)]
    if not ordered:
        raise ValueError(f"allowed={tuple(allowed)!r} names none of {tuple(names)}")
    return st.sampled_from(ordered)
