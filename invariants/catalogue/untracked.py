"""track_running_stats=False: no state kept, batch statistics in eval mode too."""
from __future__ import annotations

import torch

from bn_invariants.invariants.assertions import InvariantViolation, assert_close
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.preconditions import UNTRACKED
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import output_tolerance

STATE = ("running_mean", "running_var", "num_batches_tracked")


def snapshot(module) -> dict:
    """The module's running-state attributes: None, or a copy of the tensor."""
    state = {}
    for name in STATE:
        value = getattr(module, name, None)
        state[name] = value.detach().clone() if isinstance(value, torch.Tensor) else None
    return state


def check(subject, case, reference):
    p = case.problem
    module = build(subject, p)
    ctx = context(subject, p)
    before = snapshot(module)
    x = p.input()
    y_train = module(x).detach()
    after = snapshot(module)
    for name in STATE:
        old, new = before[name], after[name]
        if new is None:
            continue
        if old is None or old.shape != new.shape or not torch.equal(old, new):
            raise InvariantViolation(
                f"{name} changed in a training step ({old!r} -> {new!r}), but should stay "
                f"None (or untouched): track_running_stats=False keeps no state [{ctx}]")
    y_eval = module.eval()(x)
    stats = statistics(p.values, p.options.eps)
    gamma, beta = affine_of(module, p.values.dim())
    tol = 2 * output_tolerance(p.dtype, stats, gamma, beta)
    assert_close("eval-mode output", y_eval, y_train, tol,
                 f"{ctx}; should use the batch's statistics like the training-mode output")


NO_RUNNING_STATS_WHEN_UNTRACKED = register(Invariant(
    id="no-running-stats-when-untracked",
    title="track_running_stats=False: no running state, batch statistics in eval mode",
    family="running statistics",
    statement=(r"\text{track\_running\_stats}=\text{False}:\ \text{state}_{t+1} = "
               r"\text{state}_t \text{ and } \mathrm{BN}_{eval}(x) = \mathrm{BN}_{train}(x)"),
    why=("Without tracked statistics there is nothing to normalise with at inference but "
         "the batch itself: torch sets running_mean, running_var and num_batches_tracked to "
         "None and uses batch statistics in both modes. A module that silently keeps (and "
         "updates) running statistics, or normalises with stale defaults (0, 1) in eval "
         "mode, breaks this."),
    source="torch.nn.BatchNorm2d documentation (track_running_stats)",
    applies=(UNTRACKED, "every rank, dtype, layout, eps, momentum and affine",
             "one training step, then eval mode on the same batch"),
    tolerance=("running state: bitwise (None, or unchanged by torch.equal); outputs: twice the "
               "output tolerance of BN(x), since both modes approximate the same exact output"),
    tolerance_formula=r"|y^{eval}_i - y^{train}_i| \le 2\,\tau^{out}_i",
    check=check,
))
