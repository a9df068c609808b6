"""What a case carries beside its Problem: one frozen dataclass per kind of draw.

An invariant declares its type (``Invariant.params``) and draws it with ``drawn``; its
check reads typed fields (``case.params.steps``).  Every type here is exported by
``bn_invariants.invariants``, so a printed case such as
``Case(problem=Problem(shape=(2, 1)), params=Steps(steps=2, lr=1.0))`` pastes back.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st


@dataclass(frozen=True)
class Params:
    """No parameters: the case is its problem alone (the base of every kind below)."""


def drawn(kind: type, **fields: st.SearchStrategy) -> st.SearchStrategy:
    """Params of type ``kind`` with each field drawn from its strategy, in the order given
    (as a fixed dictionary: the same draws, and the same shrinking, as one)."""
    return st.fixed_dictionaries(fields).map(lambda values: kind(**values))


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

