"""Probing a distributed subject before any test, as the single-process family probes
its subjects: the tensor ranks and dtypes it takes, the options it declines (never
drawn, shown in the coverage), then one forward pass checked for each rank's shape.
A subject that cannot be checked at all ends the run with one clear sentence."""
from __future__ import annotations

from dataclasses import dataclass, replace

from bn_invariants.invariants.capabilities import Capabilities
from bn_invariants.invariants.cases import DistCase
from bn_invariants.invariants.coverage import describe
from bn_invariants.invariants.distributed.pool import (PoolError, WorkerHang, WorkerTimeout,
                                                       shared_pool)
from bn_invariants.invariants.distributed.run import TIMEOUT, run_ranks
from bn_invariants.invariants.distributed.split import slice_bounds
from bn_invariants.invariants.distributed.subjects import DIST_DTYPES, DistSpace
from bn_invariants.invariants.distributed.tasks import ProbeRequest, forward_only, probe_inputs
from bn_invariants.invariants.subjects import SubjectError
from bn_invariants.strategies import Problem

PROBE_SIZES = (2, 1)
"""The probe's slices: 2 samples on rank 0, 1 on rank 1."""


@dataclass(frozen=True)
class DistProbed:
    """One distributed subject: what it takes (``space``) and declines (``capabilities``)."""

    space: DistSpace
    capabilities: Capabilities
    refused: tuple = ()
    """The (dtype, tensor rank) pairs whose forward pass raised: never drawn."""

    def coverage_line(self) -> str:
        """What the subject takes, then what it refuses and declines."""
        parts = [describe(self.space)]
        if self.refused:
            per_dtype = {}
            for dtype, rank in self.refused:
                per_dtype.setdefault(dtype, []).append(str(rank))
            if len({tuple(r) for r in per_dtype.values()}) == 1:
                what = f"ranks {', '.join(next(iter(per_dtype.values())))}"
            else:
                what = "; ".join(f"{d} ranks {', '.join(r)}" for d, r in per_dtype.items())
            parts.append(f"refuses {what} ({self.space.refusal})")
        if self.capabilities.declined:
            parts.append(self.capabilities.describe())
        return "; ".join(parts)


def _unusable(subject, exc: PoolError, doing: str) -> SubjectError:
    if isinstance(exc, (WorkerHang, WorkerTimeout)):
        return SubjectError(f"{subject} deadlocks in {doing} on 2 ranks ({exc}); "
                            f"--bn-dist-timeout sets the last-resort limit")
    return SubjectError(f"{subject} failed {doing} on 2 ranks: {exc}")


def probe(subject) -> DistProbed:
    """What ``subject`` takes on 2 ranks (each tensor rank 2-5 in float32 and float64,
    each option in the first it takes), then one training-mode forward pass checked for
    shapes; SubjectError when it takes nothing, raises, deadlocks or returns on some
    rank anything but a tensor of that rank's slice shape."""
    requests = [ProbeRequest(subject.name, subject.device, r, n, DIST_DTYPES)
                for r, n in enumerate(PROBE_SIZES)]
    try:
        answers = shared_pool(subject.backend, 2, TIMEOUT["seconds"]).run(probe_inputs, requests)
    except PoolError as exc:
        raise _unusable(subject, exc, "its probe") from None
    refused = {key: next((a["refused"][key] for a in answers if a["refused"][key]), "")
               for key in answers[0]["refused"]}
    taken = {}
    for (dtype, rank), why in refused.items():
        if not why:
            taken[dtype] = taken.get(dtype, ()) + (rank,)
    first_refusal = next((why for why in refused.values() if why), "")
    space = replace(subject.space(), dtype_ranks=taken, refusal=first_refusal)
    if not space:
        raise SubjectError(f"{subject} accepts no input: its forward pass raised for every "
                           f"rank 2-5 and dtype on 2 ranks (first: {first_refusal})")
    declined = {name: next((a["declined"][name] for a in answers if a["declined"].get(name)), "")
                for name in answers[0]["declined"]}
    _check_shapes(subject, space)
    return DistProbed(space, Capabilities({k: v for k, v in declined.items() if v}),
                      tuple(key for key, why in refused.items() if why))


def _check_shapes(subject, space: DistSpace) -> None:
    dtype, ranks = next(iter(space.dtype_ranks.items()))
    rank = 4 if 4 in ranks else ranks[0]
    shape = (sum(PROBE_SIZES), 3) + (2,) * (rank - 2)
    case = DistCase(Problem(shape=shape, dtype=dtype, device=subject.device), sizes=PROBE_SIZES)
    try:
        answers = run_ranks(subject, case, forward_only)
    except PoolError as exc:
        raise _unusable(subject, exc, "a forward pass") from None
    got, expected = [], []
    for answer, (start, stop) in zip(answers, slice_bounds(case.sizes)):
        y = answer["y"]
        got.append(tuple(y.shape) if y is not None else answer["y_type"])
        expected.append((stop - start,) + tuple(case.problem.shape[1:]))
    if got != expected:
        ranks_said = ", ".join(f"rank {r} {g} for its {e} slice"
                               for r, (g, e) in enumerate(zip(got, expected)))
        raise SubjectError(f"{subject} returned shapes that do not match the ranks' slices "
                           f"({ranks_said}), but each rank should return its own slice's shape")
