"""Everything found about a subject on a device before the search: what it accepts
(ranks, dtypes, options, modes), where it breaks its contracts, and an up-front verdict."""
from __future__ import annotations

from dataclasses import dataclass, field

from bn_invariants.invariants.capabilities import Capabilities, probe_capabilities
from bn_invariants.invariants.coverage import describe, probe
from bn_invariants.invariants.diagnosis import Diagnosis, diagnose
from bn_invariants.invariants.cases import Space
from bn_invariants.strategies import RANKS


@dataclass(frozen=True)
class Probed:
    """One subject on one device."""

    space: Space
    capabilities: Capabilities
    breaks: dict = field(default_factory=dict)
    """(dtype, rank) -> why its output breaks the contract (wrong shape or dtype)."""
    diagnosis: Diagnosis | None = None

    def coverage_line(self) -> str:
        """What the subject accepts, then what it declines."""
        declined = self.capabilities.describe()
        return describe(self.space) + (f"; {declined}" if declined else "")

    def contract_failures(self) -> dict:
        """contract id -> message, for each contract the subject breaks (an empty message
        for one it keeps): construction, then output for each rank."""
        out = {"construction-contract": "; ".join(self.capabilities.dropped)}
        for rank in RANKS:
            broken = [m for (d, r), m in self.breaks.items() if r == rank]
            out[f"output-contract-rank{rank}"] = broken[0] if broken else ""
        return out


def probe_subject(subject, device: str) -> Probed:
    """Probe ``subject`` on ``device`` (raises SubjectError when nothing can be checked)."""
    breaks: dict = {}
    space = probe(subject, device, breaks)
    return Probed(space, probe_capabilities(subject, device, space), breaks,
                  diagnose(subject, space))
