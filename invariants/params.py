"""What a case carries beside its Problem: one frozen dataclass per kind of draw.

An invariant declares its params with ``drawn(Kind, field=strategy, ...)``
(``Invariant.params``); its check reads typed fields (``case.params.steps``).  Every type here is exported by
``bn_invariants.invariants``, so a printed case such as
``Case(problem=Problem(shape=(2, 1)), params=Steps(steps=2, lr=1.0))`` pastes back.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st


@dataclass(frozen=True)
class Params:
    """No parameters: the case is its problem alone (the base of every kind below)."""


@dataclass(frozen=True, eq=False)
class Drawn:
    """How an invariant draws its params: their type, and a strategy per field."""

    kind: type
    fields: tuple = ()
    """(name, strategy) pairs, in the order they are drawn."""

    def strategy(self) -> st.SearchStrategy:
        """Params of type ``kind``, each field drawn from its strategy in order (as a fixed
        dictionary: the same draws, and the same shrinking, as one)."""
        if not self.fields:
            return st.just(self.kind())
        return st.fixed_dictionaries(dict(self.fields)).map(lambda values: self.kind(**values))


def drawn(kind: type, **fields: st.SearchStrategy) -> Drawn:
    """Params of type ``kind``, field ``name`` drawn from ``fields[name]``:
    ``drawn(Steps, steps=st.integers(1, 6), lr=st.sampled_from((1.0, 0.1)))``."""
    return Drawn(kind, tuple(fields.items()))


@dataclass(frozen=True)
class Shift(Params):
    """A per-channel shift b: ``shift`` the strength (|b|/s up to the dtype's largest
    offset ratio to this power), ``exact`` whether b lies on the input's exact grid."""

    shift: float
    exact: bool


@dataclass(frozen=True)
class BiasOffset(Params):
    """A per-channel constant added to x before the batch norm; ``bias`` its strength."""

    bias: float


@dataclass(frozen=True)
class Sample(Params):
    """Which samples eval mode is run on alone (an index, reduced modulo N)."""

    sample: int


@dataclass(frozen=True)
class Scale(Params):
    """A factor the input (or the weights before it) is multiplied by."""

    scale: float


@dataclass(frozen=True)
class Steps(Params):
    """``steps`` gradient-descent steps of learning rate ``lr``."""

    steps: int
    lr: float


@dataclass(frozen=True)
class Batches(Params):
    """How many batches the running statistics have already seen."""

    batches: int


@dataclass(frozen=True)
class Repeats(Params):
    """``steps`` training steps in a row, each on a fresh batch."""

    steps: int


@dataclass(frozen=True)
class Extreme(Params):
    """Where each channel's largest |x| lies in the dtype's range (``position`` in [0, 1])
    and how many binades below it the rest spread (``spread``)."""

    position: float
    spread: int


@dataclass(frozen=True)
class PowerOfTwo(Params):
    """A scale ``sign`` · 2^``exponent``."""

    exponent: int
    sign: float


@dataclass(frozen=True)
class PositiveScale(Params):
    """A scale (1 + ``mantissa``/64) · 2^``exponent``."""

    mantissa: int
    exponent: int


@dataclass(frozen=True)
class RedrawnChannel(Params):
    """Channel ``channel`` (modulo C) redrawn as normal · ``scale`` + ``offset``."""

    channel: int
    scale: float
    offset: float


NO_PARAMS = Drawn(Params)
"""The params of an invariant that draws none."""
