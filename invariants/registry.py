"""The invariant registry: each invariant is one entry of data and code.

Tests, the run's report and the catalogue docs are all generated from REGISTRY.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from hypothesis import strategies as st

from bn_invariants.invariants.cases import Space, draw_cases
from bn_invariants.invariants.distributed.split import dist_cases
from bn_invariants.invariants.params import NO_PARAMS, Drawn
from bn_invariants.invariants.preconditions import Precondition
from bn_invariants.strategies import bn_options


@dataclass(frozen=True)
class Invariant:
    """A property every correct batch norm satisfies.

    ``draw(space)`` is the strategy of its Cases inside ``space``: ``cases(space,
    params, **narrowing)`` (its kind's generator unless it draws its own problems), with
    ``params`` the strategy of its typed params and ``narrowing`` what its
    preconditions add; a precondition that cannot narrow the draw filters it.
    Every check is ``check(subject, case, reference)``: it raises InvariantViolation
    when the subject breaks the property, Unsupported when the subject declines the
    operation outright; ``reference`` is the implementation of --bn-ref (the float64
    oracle by default), read only by a differential invariant (``needs_reference``).
    ``dtypes``/``ranks``/``devices`` limit where it applies (None: everywhere).
    """

    id: str
    title: str
    family: str
    statement: str
    why: str
    source: str
    applies: str | tuple
    """Where it applies, in words: a sentence, or parts joined by "; ", each
    Precondition among them one part (its text and its predicate are one object)."""
    tolerance: str
    tolerance_formula: str
    check: Callable
    cases: Callable | None = None
    """Its own generator, ``cases(space, params, **narrowing)``; None: that of its kind
    (``draw_cases``, or ``dist_cases`` for the distributed kind)."""
    params: Drawn = NO_PARAMS
    """Its params: their type (``params.kind``) and how each field is drawn."""
    dtypes: tuple | None = None
    ranks: tuple | None = None
    needs_reference: bool = False
    """Whether its check compares the subject with ``reference`` (the docs say so)."""
    devices: tuple | None = None
    long_reductions: bool = True
    """Whether its cases may be long reductions (False for single values, empty batches and
    finite differences): every run then checks it at 4096 values per channel too, and the
    runner's LONG_PATH_INVARIANTS at 2**17 + 1 (``Target.long_cases``)."""
    kind: str = "single"
    """"single": checked on one process against a Subject (tests/test_invariants.py);
    "distributed": checked on W ranks of a process group against a DistSubject
    (invariants/distributed, tests/test_distributed.py)."""

    @property
    def preconditions(self) -> tuple:
        """The Preconditions among the parts of ``applies``."""
        parts = (self.applies,) if isinstance(self.applies, str) else self.applies
        return tuple(p for p in parts if isinstance(p, Precondition))

    @property
    def applies_text(self) -> str:
        """``applies`` as one sentence."""
        if isinstance(self.applies, str):
            return self.applies
        return "; ".join(str(part) for part in self.applies)

    def draw(self, space: Space) -> st.SearchStrategy:
        """The strategy of Cases this invariant checks inside ``space``."""
        narrowing, options = {}, {}
        for condition in self.preconditions:
            narrowing.update(condition.problems)
            options.update(condition.options)
        if options:
            narrowing["options"] = bn_options(**options)
        generator = self.cases or GENERATORS[self.kind]
        cases = generator(space, self.params.strategy(), **narrowing)
        filters = tuple(c.holds for c in self.preconditions if not c.narrows)
        if not filters:
            return cases
        return cases.filter(lambda case: all(holds(case) for holds in filters))

    def applies_on(self, device: str) -> bool:
        """Whether this invariant applies on ``device`` ("cpu", "cuda")."""
        return self.devices is None or device in self.devices

    def space_for(self, space: Space) -> Space:
        """The part of a subject's space this invariant applies to."""
        if not self.applies_on(space.device):
            return Space(space.device, {}, space.refusal)
        return space.restrict(self.dtypes, self.ranks)


GENERATORS = {"single": draw_cases, "distributed": dist_cases}
"""The cases of each kind of invariant, unless it draws its own."""

REGISTRY: dict[str, Invariant] = {}


def register(invariant: Invariant) -> Invariant:
    """Add ``invariant`` to REGISTRY; ids are unique."""
    if invariant.id in REGISTRY:
        raise ValueError(f"invariant id {invariant.id!r} is registered twice")
    REGISTRY[invariant.id] = invariant
    return invariant
