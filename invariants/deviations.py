"""What a known deviation is: where torch's own batch norm breaks an invariant under a sound
tolerance.  The deviations themselves are data, in ``known_deviations``.

Each one is a finding, not a loosened tolerance: the property test skips only the
region it covers, and a strict xfail replays its minimal counterexample, so the
entry must be removed the day torch fixes it.  A deviation records the torch versions
it was measured on; on another version its replay is not enforced (a non-strict xfail
that reports whether the deviation is still there), since nobody has verified it there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bn_invariants.invariants.cases import Case
from bn_invariants.invariants.registry import Invariant


def torch_minor(version: str) -> str:
    """'2.13' for '2.13.0+cpu': the major.minor a deviation's measured_on names."""
    return ".".join(version.split("+")[0].split(".")[:2])


@dataclass(frozen=True)
class KnownDeviation:
    """An invariant torch breaks for some factories, on a device, in some dtypes."""

    invariant: Invariant
    factories: tuple[Callable, ...]
    device: str
    dtypes: tuple[str, ...]
    counterexample: Case
    measured: str
    explanation: str
    measured_on: tuple[str, ...]
    """The torch versions (major.minor, e.g. "2.13") this deviation was measured on."""
    region: Callable | None = None
    """``region(problem) -> bool``: the part of those dtypes it covers (None: all of them).
    Outside it the property test still runs, so the deviation is as narrow as its cause."""
    region_text: str = ""
    """The region in words, for the catalogue ("strided or channels-last storage")."""
    device_fault: bool = False
    """A crash of the device (a sticky fault such as CUDA's misaligned address), not a wrong
    value: every invariant that runs the subject on this device would meet it, and one
    fault poisons the process's device context.  So its region is left out of the search
    of every invariant (not only ``invariant``, the one it was measured in), and its
    replay runs in a fresh process."""

    def covers(self, invariant_id: str, subject, device: str) -> bool:
        """Whether this deviation concerns ``invariant_id`` for ``subject`` on ``device``."""
        return ((self.device_fault or invariant_id == self.invariant.id)
                and device == self.device
                and subject.factory in self.factories)

    def contains(self, problem) -> bool:
        """Whether ``problem`` lies in the region this deviation covers."""
        return problem.dtype in self.dtypes and (self.region is None or self.region(problem))

    def verified_on(self, torch_version: str) -> bool:
        """Whether it was measured on ``torch_version``'s major.minor: only then is its
        replay a strict xfail."""
        return torch_minor(torch_version) in self.measured_on
