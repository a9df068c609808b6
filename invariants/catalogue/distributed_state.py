"""Batch norm across processes, its state and its use: running statistics on every
rank, eval mode, and gradient descent on a bias before it with W ranks."""
from __future__ import annotations

from types import SimpleNamespace

import torch
from hypothesis import strategies as st

from bn_invariants.strategies import streams
from bn_invariants.invariants.params import Batches, Steps, drawn
from bn_invariants.invariants.assertions import assert_close, assert_true
from bn_invariants.invariants.bounds import batch_statistics, running_update
from bn_invariants.invariants.distributed.run import (FAMILY, K_OF_N, affine, dist_context,
                                                      run_checked, run_ranks, summed)
from bn_invariants.invariants.distributed.split import slice_bounds
from bn_invariants.invariants.distributed.tasks import bias_descent, eval_step, train_step
from bn_invariants.invariants.preconditions import TRACKED
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.step import drawn_running_stats, eval_map
from bn_invariants.invariants.trajectory import DRIFT, Trajectory, check_trajectory


def stored(values: torch.Tensor, dtype) -> torch.Tensor:
    """``values`` (float64) as a buffer of ``dtype`` holds them, in float64."""
    return values.to(dtype).double()


def check_running_stats(subject, case, reference):
    p = case.problem
    start_mean, start_var = drawn_running_stats(p, stream=streams.RUNNING_START)
    batches = case.params.batches
    answers, ctx = run_checked(subject, case, train_step, lambda r: (start_mean, start_var, batches))
    first = answers[0]
    for rank, answer in enumerate(answers):
        for name in ("running_mean", "running_var"):
            assert_close(f"{name} on rank {rank} - on rank 0", answer[name], first[name], 0.0, ctx)
        assert_true(f"num_batches_tracked on rank {rank}",
                    answer["num_batches_tracked"] in (None, batches + 1),
                    answer["num_batches_tracked"], batches + 1, ctx)
    m = p.options.momentum
    factor = 1.0 / (batches + 1) if m is None else m
    dtype = first["running_dtype"]
    mean, var = batch_statistics(p.values, p.dtype, p.options.eps, centre=dtype)
    buffer = getattr(torch, dtype)
    for name, start, stat in (("running_mean", start_mean, mean), ("running_var", start_var, var)):
        exact, bound = running_update(stored(start, buffer), [(factor, stat)], dtype)
        assert_close(f"{name} (every rank)", first[name], exact, bound, ctx)


DISTRIBUTED_RUNNING_STATS = register(Invariant(
    id="distributed-running-stats",
    title="Across W processes, running statistics are identical on every rank and unbiased "
          "with the global count",
    family=FAMILY,
    statement=(r"\hat\mu^{(r)} = (1-m)\hat\mu + m\,\mu,\quad \hat\sigma^{2(r)} = (1-m)\hat\sigma^2"
               r" + m\,\tfrac{n}{n-1}\sigma^2\quad \text{for every rank } r,\ n = \sum_r n_r"),
    why=("Every rank folds the same global statistics into its buffers, so after a step they "
         "are bitwise identical across ranks (as a broadcast would leave them) and equal the "
         "single-process update on the concatenated batch. Bessel's correction uses the global "
         "count n: with the local count n_r a rank holding one sample divides by n_r − 1 = 0 "
         "or skips the correction, and ranks disagree."),
    source=("torch.nn.SyncBatchNorm (batch_norm_gather_stats_with_counts updates the running "
            "statistics with the global count); torch.nn.BatchNorm2d documentation"),
    applies=("training mode", TRACKED, "every momentum (None: the cumulative average after 0 "
             "to 5 earlier batches)", "W = 2 to 4 ranks, uneven slices", "float32 and float64"),
    tolerance=("ranks: exactly equal to rank 0; the update: the running-stats-update bound of "
               f"the global batch; {K_OF_N}"),
    tolerance_formula=(r"\hat\mu^{(r)} = \hat\mu^{(0)}\ \text{exactly},\quad "
                       r"\tau = m\,\delta_s + 4u_{buf}(|r_0| + m|s|) + \text{tiny},\ k(n) = n"),
    params=drawn(Batches, batches=st.integers(0, 5)),
    check=check_running_stats,
    kind="distributed",
))


def check_eval_local(subject, case, reference):
    p = case.problem
    starts = [drawn_running_stats(p, stream=5 + r) for r in range(len(case.sizes))]
    answers, ctx = run_checked(subject, case, eval_step, lambda r: (*starts[r], 3))
    rank = p.values.dim()
    for r, ((start, stop), answer) in enumerate(zip(slice_bounds(case.sizes), answers)):
        buffer = getattr(torch, answer["running_dtype"])
        for name, value in zip(("running_mean", "running_var"), starts[r]):
            assert_close(f"{name} on rank {r} after eval", answer[name], stored(value, buffer),
                         0.0, ctx)
        assert_true(f"num_batches_tracked on rank {r} after eval",
                    answer["num_batches_tracked"] in (None, 3), answer["num_batches_tracked"], 3,
                    ctx)
        module = SimpleNamespace(**{k: answer[k] for k in ("running_mean", "running_var",
                                                           "weight", "bias")})
        mapping = eval_map(module, rank, p.options.eps)
        x = p.values[start:stop]
        assert_close(f"y on rank {r} (eval, its own running statistics)", answer["y"], mapping(x),
                     mapping.tolerance(p.dtype, x), ctx)


DISTRIBUTED_EVAL_LOCAL = register(Invariant(
    id="distributed-eval-local",
    title="Across W processes, eval mode is purely local",
    family=FAMILY,
    statement=(r"\mathrm{SyncBN}_{eval}(x_r) = \gamma\,\frac{x_r - \hat\mu^{(r)}}"
               r"{\sqrt{\hat\sigma^{2(r)}+\varepsilon}} + \beta\ \text{on each rank, state unchanged}"),
    why=("In eval mode with running statistics a batch norm is a fixed per-channel affine map: "
         "nothing depends on other samples, so nothing needs to be synchronised, and ranks "
         "whose running statistics differ (here each rank gets its own) must each use their "
         "own. Synchronising anyway mixes them (or hangs when ranks run eval unevenly)."),
    source="torch.nn.SyncBatchNorm.forward (need_sync only in training mode)",
    applies=("eval mode", TRACKED, "different running statistics on each rank",
             "W = 2 to 4 ranks, uneven slices", "float32 and float64"),
    tolerance=("each rank: the eval-affine-map bound from its own running statistics; the "
               "buffers and num_batches_tracked exactly unchanged"),
    tolerance_formula=(r"|y_i - (a_c x_i + c_c)| \le 4u_{acc}|a|(|x|+|\hat\mu|) + "
                       r"6u_{out}(|a|(|x|+|\hat\mu|)+|\beta|) + \text{tiny}(1+|a|)"),
    check=check_eval_local,
    kind="distributed",
))


def check_no_drift(subject, case, reference):
    p = case.problem
    steps, lr = case.params.steps, case.params.lr
    ctx = f"{dist_context(subject, case)}; {steps} steps of lr {lr}"
    answers = run_ranks(subject, case, bias_descent)
    for r, answer in enumerate(answers):
        assert_close(f"b_t on rank {r} - on rank 0", answer["path_bias"], answers[0]["path_bias"],
                     0.0, ctx)
    path = Trajectory(answers[0]["path_bias"], summed(answers, "path_loss", ctx))
    gamma, beta = affine(answers[0], p.values.dim())
    check_trajectory(p, path, gamma, beta, steps, lr, ctx)


DISTRIBUTED_NO_BIAS_DRIFT = register(Invariant(
    id="distributed-no-bias-drift",
    title="Across W processes, no drift of a bias before the normalisation under gradient "
          "descent",
    family=FAMILY,
    statement=(r"b_{t+1} = b_t - \eta\sum_r\partial\ell_r/\partial b \;\Rightarrow\; "
               r"b_T = b_0 \text{ and } \sum_r\ell_r(b_T) = \sum_r\ell_r(b_0)"),
    why=("The seed's experiment with W ranks trained data-parallel: each rank differentiates its "
         "own loss, the bias gradient is all-reduced, every rank steps. With the statistics' "
         "gradient taken globally, Σ_r ∂ℓ_r/∂b = 0 and b stays put. A backward that skips the "
         "all-reduce of Σg and Σg x̂ gives each rank a gradient that does not cancel over the "
         "ranks: b moves every step while the output and the loss stay fixed."),
    source="Ioffe & Szegedy (2015), section 2, run data-parallel over W processes",
    applies=("training mode; W = 2 to 4 ranks, uneven slices; float32 and float64; every "
             "option; 1 to 4 steps"),
    tolerance=f"the no-bias-drift bound of the global batch: {DRIFT.words}; {K_OF_N}",
    tolerance_formula=DRIFT.formula + r",\quad k(n) = n",
    params=drawn(Steps, steps=st.integers(1, 4), lr=st.sampled_from((1.0, 0.1, 10.0))),
    check=check_no_drift,
    kind="distributed",
))
