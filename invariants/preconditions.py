"""Preconditions: what an invariant's cases meet, written once.

A Precondition carries the words the catalogue shows and the predicate a case satisfies,
and says how the draw meets it: ``options`` (``bn_options`` keywords) or ``problems``
(``problems()`` keywords) narrow the draw; a precondition with neither filters it.  An
invariant lists its preconditions among the parts of its ``applies`` text, so the
sentence and the code are one object (tests/test_cases.py draws cases and checks
every predicate).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True, eq=False)
class Precondition:
    """A condition every case of an invariant meets (see the module's docstring)."""

    text: str
    holds: Callable
    """holds(case) -> bool."""
    options: Mapping = field(default_factory=dict)
    problems: Mapping = field(default_factory=dict)

    @property
    def narrows(self) -> bool:
        """Whether the draw meets it by construction (else it filters the draw)."""
        return bool(self.options or self.problems)

    def __str__(self) -> str:
        return self.text


def option_is(name: str, value, text: str | None = None) -> Precondition:
    """The BNOptions field ``name`` equals ``value`` (drawn so): "name=value"."""
    return Precondition(text or f"{name}={value!r}",
                        lambda case: getattr(case.problem.options, name) == value,
                        options={name: value})


def option_in(name: str, values: tuple, text: str) -> Precondition:
    """The BNOptions field ``name`` is one of ``values`` (drawn from them)."""
    return Precondition(text, lambda case: getattr(case.problem.options, name) in values,
                        options={name: values})


def regime_in(regimes: tuple, text: str) -> Precondition:
    """The problem's regime is one of ``regimes`` (drawn from them)."""
    return Precondition(text, lambda case: case.problem.regime in regimes,
                        problems={"regimes_allowed": regimes})


def layout_in(layouts: tuple, text: str) -> Precondition:
    """The problem's layout is one of ``layouts`` (drawn from them)."""
    return Precondition(text, lambda case: case.problem.layout in layouts,
                        problems={"layouts_allowed": layouts})


AFFINE = option_is("affine", True)
TRACKED = option_is("track_running_stats", True)
UNTRACKED = option_is("track_running_stats", False)
TWO_SAMPLES = Precondition("batch size at least 2", lambda case: case.problem.shape[0] >= 2)
TWO_CHANNELS = Precondition("at least two channels", lambda case: case.problem.num_features >= 2)
