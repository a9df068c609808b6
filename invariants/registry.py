"""The invariant registry: each invariant is one entry of data and code.

Tests, the run's report and the catalogue docs are all generated from REGISTRY.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from hypothesis import strategies as st

from bn_invariants.invariants.params import Params
from bn_invariants.strategies import Problem


@dataclass(frozen=True)
class Space:
    """What a subject accepts on one device: dtype name -> accepted ranks."""

    device: str
    dtype_ranks: Mapping[str, tuple]
    refusal: str = ""
    """The first error a refused input raised, to explain an empty space."""

    def restrict(self, dtypes=None, ranks=None) -> "Space":
        """The part of this space inside ``dtypes`` and ``ranks`` (None: no limit)."""
        kept = {}
        for dtype, accepted in self.dtype_ranks.items():
            if dtypes is not None and dtype not in dtypes:
                continue
            rs = tuple(r for r in accepted if ranks is None or r in ranks)
            if rs:
                kept[dtype] = rs
        return Space(self.device, kept, self.refusal)

    def __bool__(self) -> bool:
        return bool(self.dtype_ranks)


@dataclass(frozen=True)
class Case:
    """One drawn example: a Problem plus the invariant's own parameters, typed
    (invariants/params.py).  Its repr is Python that rebuilds it."""

    problem: Problem
    params: Params = Params()


@dataclass(frozen=True)
class DistCase(Case):
    """A distributed example: the problem's batch split over W = len(sizes) ranks,
    rank r holding the next ``sizes[r]`` samples."""

    sizes: tuple = ()


@dataclass(frozen=True)
class Invariant:
    """A property every correct batch norm satisfies.

    ``cases(space)`` draws Cases inside ``space``, whose params are of type ``params``;
    every check is ``check(subject, case, reference)``: it raises InvariantViolation when
    the subject breaks the property, Unsupported when the subject declines the operation
    outright.  ``reference`` is the implementation of --bn-ref (the float64 oracle by
    default); only a differential invariant (``needs_reference``) reads it.
    ``dtypes``/``ranks``/``devices`` limit where it applies (None: everywhere).
    """

    id: str
    title: str
    family: str
    statement: str
    why: str
    source: str
    applies: str
    tolerance: str
    tolerance_formula: str
    cases: Callable[[Space], st.SearchStrategy]
    check: Callable
    dtypes: tuple | None = None
    ranks: tuple | None = None
    params: type = Params
    """The type of its cases' params."""
    needs_reference: bool = False
    """Whether its check compares the subject with ``reference`` (the docs say so)."""
    devices: tuple | None = None
    long_reductions: bool = True
    """Whether its cases may be long reductions (False for single values, empty batches and
    finite differences): every run then checks it at 4096 values per channel too."""
    kind: str = "single"
    """"single": checked on one process against a Subject (tests/test_invariants.py);
    "distributed": checked on W ranks of a process group against a DistSubject
    (invariants/distributed, tests/test_distributed.py)."""

    def applies_on(self, device: str) -> bool:
        """Whether this invariant applies on ``device`` ("cpu", "cuda")."""
        return self.devices is None or device in self.devices

    def space_for(self, space: Space) -> Space:
        """The part of a subject's space this invariant applies to."""
        if not self.applies_on(space.device):
            return Space(space.device, {}, space.refusal)
        return space.restrict(self.dtypes, self.ranks)


REGISTRY: dict[str, Invariant] = {}


def register(invariant: Invariant) -> Invariant:
    """Add ``invariant`` to REGISTRY; ids are unique."""
    if invariant.id in REGISTRY:
        raise ValueError(f"invariant id {invariant.id!r} is registered twice")
    REGISTRY[invariant.id] = invariant
    return invariant
