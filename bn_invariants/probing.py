"""Everything found about a subject on a device before the search: what it accepts
(ranks, dtypes, options, modes), where it breaks its contracts, and an up-front verdict."""
from __future__ import annotations

from dataclasses import dataclass, field

from bn_invariants.invariants.capabilities import Capabilities, probe_capabilities
from bn_invariants.invariants.coverage import describe, probe
from bn_invariants.invariants.diagnosis import Diagnosis, diagnose
from bn_invariants.invariants.cases import Space
from bn_invariants.strategies import DTYPE_NAMES, RANKS


@dataclass(frozen=True)
class Probed:
    """One subject on one device."""

    space: Space
    capabilities: Capabilities
    breaks: dict = field(default_factory=dict)
    """(dtype, rank) -> why its output breaks the contract (wrong shape or dtype)."""
    diagnosis: Diagnosis | None = None
    left_out: tuple = ()
    """Dtypes the subject accepts that the user's scope (--bn-dtypes) leaves out."""

    def coverage_line(self) -> str:
        """What the subject accepts, what it declines, and what the scope leaves out."""
        declined = self.capabilities.describe()
        left = (f"; left out by --bn-dtypes: {', '.join(self.left_out)}"
                if self.left_out else "")
        return describe(self.space) + (f"; {declined}" if declined else "") + left

    def contracts(self, conventions) -> dict:
        """contract id -> message (empty where it is kept): the up-front
        batch-normalisation verdict under ``conventions``, then ``contract_failures``."""
        verdict = self.diagnosis.verdict(conventions) if self.diagnosis else ""
        return {"batch-normalisation": verdict, **self.contract_failures()}

    def contract_failures(self) -> dict:
        """contract id -> message, for each contract the subject breaks (an empty message
        for one it keeps): construction, then output for each rank."""
        out = {"construction-contract": "; ".join(self.capabilities.dropped)}
        for rank in RANKS:
            broken = [m for (d, r), m in self.breaks.items() if r == rank]
            out[f"output-contract-rank{rank}"] = broken[0] if broken else ""
        return out


def probe_subject(subject, device: str, dtypes=None) -> Probed:
    """Probe ``subject`` on ``device`` (raises SubjectError when nothing can be checked);
    ``dtypes`` (None: all) is the user's scope: only those are checked, and the accepted
    dtypes it leaves out are listed.  The up-front diagnosis uses every accepted dtype."""
    breaks: dict = {}
    space = probe(subject, device, breaks)
    capabilities = probe_capabilities(subject, device, space)
    diagnosis = diagnose(subject, space)
    left_out = ()
    if dtypes is not None:
        left_out = tuple(d for d in space.dtype_ranks if d not in dtypes)
        space = space.restrict(dtypes)
        breaks = {key: why for key, why in breaks.items() if key[0] in dtypes}
    return Probed(space, capabilities, breaks, diagnosis, left_out)


def parse_dtypes(value, what: str = "--bn-dtypes") -> tuple | None:
    """The dtypes of a scope: 'float32,float64' (or a list of names) -> a tuple of names;
    None for no scope; ValueError naming the choices for an unknown or empty one."""
    if value is None:
        return None
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in DTYPE_NAMES]
    if unknown or not names:
        raise ValueError(f"{what}={value if isinstance(value, str) else ','.join(value)}: "
                         f"should be a comma-separated list of {', '.join(DTYPE_NAMES)}")
    return tuple(names)
