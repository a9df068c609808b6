"""Running one example on W ranks and reading back what each rank computed."""
from __future__ import annotations

import torch

from bn_invariants.invariants.assertions import InvariantViolation
from bn_invariants.invariants.reference import as_channel
from bn_invariants.invariants.distributed.pool import shared_pool
from bn_invariants.invariants.distributed.split import slice_bounds
from bn_invariants.invariants.distributed.tasks import RankRequest

FAMILY = "distributed"
"""The catalogue family of every distributed invariant."""
K_OF_N = ("the reduction spans processes: each rank sums its n_r values and the all-reduce "
          "sums W partial results, one summation tree of depth at most max n_r + W − 2 ≤ n − 1, "
          "so k(n) = n with the global n still bounds it")
"""How the cross-process reduction changes k(n), for the tolerance texts."""
TIMEOUT = {"seconds": None}
"""The pool timeout set from the command line (None: the pool's default)."""


def run_ranks(subject, case, task, running=None) -> list[dict]:
    """``task`` on every rank of a group of len(case.sizes) ranks, rank r holding its
    slice of case.problem and the case's params; ``running(r)`` gives rank r's starting
    running statistics (mean, var, batches seen), None: fresh buffers."""
    bounds = slice_bounds(case.sizes)
    requests = [RankRequest(subject.name, case.problem, start, stop, case.params,
                            running(r) if running else None)
                for r, (start, stop) in enumerate(bounds)]
    return shared_pool(subject.backend, len(requests), TIMEOUT["seconds"]).run(task, requests)


def rank_outputs(subject, case, answers, ctx: str) -> list:
    """Each rank's output, after checking it is a tensor of its slice's shape and the
    input's dtype (InvariantViolation naming the rank otherwise)."""
    p = case.problem
    outputs = []
    for rank, ((start, stop), answer) in enumerate(zip(slice_bounds(case.sizes),
                                                        answers)):
        expected = (stop - start,) + tuple(p.shape[1:])
        y = answer["y"]
        if y is None:
            raise InvariantViolation(f"rank {rank} output={answer['y_type']}, but should be a "
                                     f"tensor [{ctx}]")
        if tuple(y.shape) != expected or answer["y_type"] != p.dtype:
            raise InvariantViolation(
                f"rank {rank} output={tuple(y.shape)} {answer['y_type']}, but should be its "
                f"slice's shape {expected} and dtype {p.dtype} [{ctx}]")
        outputs.append(y)
    return outputs


def run_checked(subject, case, task, running=None) -> tuple[list, str]:
    """(answers, context) of ``task`` on every rank, each rank's output checked to be a
    tensor of its slice's shape and dtype."""
    ctx = dist_context(subject, case)
    answers = run_ranks(subject, case, task, running)
    rank_outputs(subject, case, answers, ctx)
    return answers, ctx


def dist_context(subject, case) -> str:
    """The one-line context of a distributed violation: subject, W, slices, problem."""
    sizes = case.sizes
    return f"subject {subject}; W={len(sizes)} ranks, slices {sizes}; {case.problem.summary()}"


def _present(answers, key: str, ctx: str) -> list:
    missing = [r for r, a in enumerate(answers) if a.get(key) is None]
    if missing:
        raise InvariantViolation(f"{key} on rank {missing[0]}=None, but should be a tensor "
                                 f"[{ctx}]")
    return [a[key] for a in answers]


def stacked(answers, key: str, ctx: str):
    """The ranks' ``key`` tensors concatenated along the batch (rank order)."""
    return torch.cat(_present(answers, key, ctx))


def summed(answers, key: str, ctx: str):
    """The ranks' ``key`` tensors added up (what an all-reduce of them gives)."""
    return torch.stack(_present(answers, key, ctx)).sum(0)


def affine(answer, rank: int):
    """(gamma, beta) a rank stored, as float64 channel views, or (None, None)."""
    if answer.get("weight") is None or answer.get("bias") is None:
        return None, None
    return as_channel(answer["weight"], rank), as_channel(answer["bias"], rank)
