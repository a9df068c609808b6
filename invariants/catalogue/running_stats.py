"""Running statistics in training mode: the momentum update and the cumulative average."""
from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from bn_invariants.invariants.params import Batches, Repeats, drawn
from bn_invariants.invariants.bounds import tex
from bn_invariants.strategies import streams
from bn_invariants.invariants.assertions import assert_close, assert_true
from bn_invariants.invariants.bounds import batch_statistics, running_update
from bn_invariants.invariants.step import drawn_running_stats, dtype_name, running_buffers, set_running_stats
from bn_invariants.invariants.step import build, context, momentum_factor
from bn_invariants.invariants.preconditions import TRACKED, option_in
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.strategies.options import MOMENTUM_VALUES

GIVEN_MOMENTA = tuple(m for m in MOMENTUM_VALUES if m is not None)


def check_buffers(module, subject, problem, expected, what: str) -> None:
    """Compare running_mean and running_var with ``expected`` = ((exact, bound),
    (exact, bound)) from ``running_update``."""
    rm, rv, _ = running_buffers(module, subject, problem)
    ctx = f"{context(subject, problem)}; {what}"
    (mean, mean_tol), (var, var_tol) = expected
    assert_close("running_mean", rm, mean, mean_tol, ctx)
    assert_close("running_var", rv, var, var_tol, ctx)


def check_batch_count(module, expected: int, ctx: str) -> None:
    """num_batches_tracked, when the module keeps one, counts the training steps."""
    nbt = getattr(module, "num_batches_tracked", None)
    if nbt is not None:
        assert_true("num_batches_tracked", int(nbt) == expected, int(nbt), expected, ctx)


def check_update(subject, case, reference):
    p = case.problem
    m = momentum_factor(p)  # the batch's weight under the declared momentum convention
    module = build(subject, p)
    start_batches = case.params.batches
    rm0, rv0 = set_running_stats(module, subject, p, *drawn_running_stats(p, stream=streams.RUNNING_START),
                                 batches=start_batches)
    module(p.input())
    rm, rv, _ = running_buffers(module, subject, p)
    mean, var = batch_statistics(p.values, p.dtype, p.options.eps, centre=dtype_name(rm))
    expected = (running_update(rm0, [(m, mean)], dtype_name(rm)),
                running_update(rv0, [(m, var)], dtype_name(rv)))
    check_buffers(module, subject, p, expected, "one step from drawn running statistics")
    check_batch_count(module, start_batches + 1, context(subject, p))


def batches(problem, count: int):
    """``count`` problems like ``problem`` with independent values (other seeds)."""
    return [dataclasses.replace(problem, seed=(problem.seed + 104729 * k) % 2**32)
            for k in range(count)]


def check_cumulative(subject, case, reference):
    p = case.problem
    steps = case.params.steps
    module = build(subject, p)
    rm0, rv0 = set_running_stats(module, subject, p, *drawn_running_stats(p, stream=streams.RUNNING_START),
                                 batches=0)
    means, variances = [], []
    centre = dtype_name(running_buffers(module, subject, p)[0])
    for k, batch in enumerate(batches(p, steps), start=1):
        module(batch.input())
        mean, var = batch_statistics(batch.values, p.dtype, p.options.eps, centre=centre)
        means.append((1.0 / k, mean))
        variances.append((1.0 / k, var))
    rm, rv, _ = running_buffers(module, subject, p)
    expected = (running_update(rm0, means, dtype_name(rm)),
                running_update(rv0, variances, dtype_name(rv)))
    check_buffers(module, subject, p, expected, f"momentum=None, {steps} batches")
    check_batch_count(module, steps, context(subject, p))


RUNNING_STATS_UPDATE = register(Invariant(
    id="running-stats-update",
    title="Running statistics: one exponential-average step with the unbiased variance",
    family="running statistics",
    statement=(r"\hat\mu \leftarrow (1-m)\hat\mu + m\,\mu_B,\quad "
               r"\hat\sigma^2 \leftarrow (1-m)\hat\sigma^2 + m\,\tfrac{n}{n-1}\sigma_B^2,\quad "
               r"t \leftarrow t + 1"),
    why=("In training mode a batch norm normalises with the batch's statistics and folds "
         "them into running estimates for inference: an exponential moving average with "
         "momentum m, the variance with Bessel's correction n/(n−1) (torch's documented "
         "convention; the output itself uses the biased σ²_B). The check starts from "
         "running statistics drawn away from (0, 1) and from the batch's, so a flipped "
         "momentum convention, a biased variance or a skipped update shows."),
    source=("Ioffe & Szegedy (2015), Algorithm 2 (unbiased variance for inference); "
            "torch.nn.BatchNorm2d documentation (momentum, running_var unbiased)"),
    applies=("training mode", TRACKED,
             option_in("momentum", GIVEN_MOMENTA, "momentum m ∈ {0, 0.01, 0.1, 0.5, 1}"),
             "every rank, dtype, layout, eps and affine",
             "num_batches_tracked checked when the subject keeps it"),
    tolerance=("m times the statistic's error (mean: SAFETY·u_acc(k(n) + 1)(|μ| + σ); "
               "variance: SAFETY·u_acc(k(n) + 1)(σ² + σ|μ|) + the square of its centre's "
               "error, the mean's plus SAFETY·u_buf·|μ| where the mean is rounded to the "
               "buffer's dtype first, as torch does with half-precision buffers; times "
               "n/(n−1)), plus a few roundings of the update in the buffer's dtype, "
               "SAFETY·u_buf·(|r| + m|s|), plus the buffer's smallest normal"),
    tolerance_formula=(tex(r"\tau = m\,\delta_s + @{SAFETY}u_{buf}(|r_0| + m|s|) + \text{tiny},\quad "
                       r"\delta_\mu = @{SAFETY}\rho(|\mu|+\sigma),\ "
                       r"\delta_{v} = \tfrac{n}{n-1}\big(@{SAFETY}\rho(\sigma^2+\sigma|\mu|)+(\delta_\mu + @{SAFETY}u_{buf}|\mu|)^2\big),"
                       r"\ \rho = u_{acc}(k(n)+1)")),
    params=drawn(Batches, batches=st.integers(0, 5)),
    check=check_update,
))

RUNNING_STATS_CUMULATIVE = register(Invariant(
    id="running-stats-cumulative",
    title="Running statistics with momentum=None: the cumulative average",
    family="running statistics",
    statement=(r"m = \text{None}:\ \hat\mu_K = \frac1K\sum_{k=1}^K \mu_{B_k},\quad "
               r"\hat\sigma^2_K = \frac1K\sum_{k=1}^K \tfrac{n}{n-1}\sigma^2_{B_k},\quad t_K = K"),
    why=("With momentum=None the update factor is 1/t after t batches, which makes the "
         "running statistics the plain average over every batch seen since the last reset: "
         "the first step overwrites whatever was stored, each later one weighs all batches "
         "equally. An off-by-one in t mixes the initial buffers in or weighs batches "
         "unequally."),
    source="torch.nn.BatchNorm2d documentation (momentum=None: cumulative moving average)",
    applies=("training mode", TRACKED, option_in("momentum", (None,), "momentum=None"),
             "2 to 4 batches of one shape with independent values, from num_batches_tracked=0 "
             "and drawn buffers"),
    tolerance=("the running-stats-update bound applied step by step with factor 1/k: each "
               "step adds (1/k) times its statistic's error and SAFETY·u_buf·(|r| + |s|/k) "
               "+ tiny, and shrinks earlier errors by 1 − 1/k"),
    tolerance_formula=(tex(r"\tau_k = (1-\tfrac1k)\tau_{k-1} + \tfrac1k\delta_{s_k} + "
                       r"@{SAFETY}u_{buf}(|r_{k-1}| + |s_k|/k) + \text{tiny},\ \tau_0 = 0")),
    params=drawn(Repeats, steps=st.integers(2, 4)),
    check=check_cumulative,
))
