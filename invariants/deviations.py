"""Known deviations: where torch's own batch norm breaks an invariant under a sound tolerance.

Each one is a finding, not a loosened tolerance: the property test skips only the
region it covers, and a strict xfail replays its minimal counterexample, so the
entry must be removed the day torch fixes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bn_invariants.invariants.registry import Case, Space


@dataclass(frozen=True)
class KnownDeviation:
    """An invariant torch breaks for some factories, on a device, in some dtypes."""

    invariant: str
    factories: tuple[Callable, ...]
    device: str
    dtypes: tuple[str, ...]
    counterexample: Case
    measured: str
    explanation: str
    region: Callable | None = None
    """``region(problem) -> bool``: the part of those dtypes it covers (None: all of them).
    Outside it the property test still runs, so the deviation is as narrow as its cause."""
    region_text: str = ""
    """The region in words, for the catalogue ("strided or channels-last storage")."""

    def covers(self, invariant_id: str, subject, device: str) -> bool:
        """Whether this deviation concerns ``invariant_id`` for ``subject`` on ``device``."""
        return (invariant_id == self.invariant and device == self.device
                and subject.factory in self.factories)

    def contains(self, problem) -> bool:
        """Whether ``problem`` lies in the region this deviation covers."""
        return problem.dtype in self.dtypes and (self.region is None or self.region(problem))


DEVIATIONS: list[KnownDeviation] = []
"""Filled by the catalogue modules that find them (``record``)."""


def record(deviation: KnownDeviation) -> KnownDeviation:
    """Add a known deviation."""
    DEVIATIONS.append(deviation)
    return deviation


def excluding_deviations(invariant_id: str, subject, space: Space) -> Space:
    """``space`` without the dtypes a known deviation without a region covers for this
    subject (a deviation with a region is excluded case by case: ``regional_deviations``)."""
    excluded = {d for dev in DEVIATIONS if dev.covers(invariant_id, subject, space.device)
                and dev.region is None for d in dev.dtypes}
    if not excluded:
        return space
    return space.restrict(dtypes=[d for d in space.dtype_ranks if d not in excluded])


def regional_deviations(invariant_id: str, subject, device: str) -> tuple:
    """The known deviations with a region that concern this invariant, subject and device."""
    return tuple(dev for dev in DEVIATIONS
                 if dev.region is not None and dev.covers(invariant_id, subject, device))
