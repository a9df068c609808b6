"""Checking a --bn-dist-impl before any test runs, with one clear sentence per failure."""
from __future__ import annotations

from dataclasses import replace

from bn_invariants.invariants.distributed.pool import PoolError, WorkerTimeout, shared_pool
from bn_invariants.invariants.distributed.run import run_ranks
from bn_invariants.invariants.distributed.split import slice_bounds
from bn_invariants.invariants.distributed.tasks import forward_only
from bn_invariants.invariants.cases import DistCase
from bn_invariants.invariants.subjects import SubjectError
from bn_invariants.strategies import Problem

PROBE_CASE = DistCase(Problem(shape=(3, 3, 2, 2)), sizes=(2, 1))
"""One small float32 batch on 2 ranks, slices of 2 samples and 1."""


def probe(subject) -> None:
    """Run one training-mode forward pass of ``subject`` on 2 ranks; SubjectError when it
    raises, deadlocks (no answer within the pool's timeout) or returns on some rank
    anything but a tensor of that rank's slice shape."""
    case = replace(PROBE_CASE, problem=replace(PROBE_CASE.problem, device=subject.device))
    try:
        answers = run_ranks(subject, case, forward_only)
    except WorkerTimeout:
        timeout = shared_pool(subject.backend).timeout_s
        raise SubjectError(f"{subject} did not finish a forward pass on 2 ranks within "
                           f"{timeout:g} s: it deadlocks (a collective not every rank "
                           f"reached?); --bn-dist-timeout sets the limit") from None
    except PoolError as exc:
        raise SubjectError(f"{subject} failed a forward pass on 2 ranks: {exc}") from None
    got, expected = [], []
    for answer, (start, stop) in zip(answers, slice_bounds(case.sizes)):
        y = answer["y"]
        got.append(tuple(y.shape) if y is not None else answer["y_type"])
        expected.append((stop - start,) + tuple(case.problem.shape[1:]))
    if got != expected:
        ranks = ", ".join(f"rank {r} {g} for its {e} slice"
                          for r, (g, e) in enumerate(zip(got, expected)))
        raise SubjectError(f"{subject} returned shapes that do not match the ranks' slices "
                           f"({ranks}), but each rank should return its own slice's shape")
