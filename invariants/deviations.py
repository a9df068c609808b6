"""Known deviations: where torch's own batch norm breaks an invariant under a sound tolerance.

Each one is a finding, not a loosened tolerance: the property test skips only the
region it covers, and a strict xfail replays its minimal counterexample, so the
entry must be removed the day torch fixes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from invariants.registry import Case, Space


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

    def covers(self, invariant_id: str, subject, device: str) -> bool:
        """Whether this deviation concerns ``invariant_id`` for ``subject`` on ``device``."""
        return (invariant_id == self.invariant and device == self.device
                and subject.factory in self.factories)


DEVIATIONS: list[KnownDeviation] = []
"""Filled by the catalogue modules that find them (``record``)."""


def record(deviation: KnownDeviation) -> KnownDeviation:
    """Add a known deviation."""
    DEVIATIONS.append(deviation)
    return deviation


def excluding_deviations(invariant_id: str, subject, space: Space) -> Space:
    """``space`` without the dtypes a known deviation covers for this subject."""
    excluded = {d for dev in DEVIATIONS if dev.covers(invariant_id, subject, space.device)
                for d in dev.dtypes}
    if not excluded:
        return space
    return space.restrict(dtypes=[d for d in space.dtype_ranks if d not in excluded])
