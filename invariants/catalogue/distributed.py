"""Batch norm across processes: W ranks, each with its slice of the global batch,
must behave like one batch norm on the concatenated batch (forward and backward).

Tolerances are the single-process ones with the global n.  The cross-process
reduction is a two-level summation tree of the n values (each rank sums its n_r,
the all-reduce sums W partial results), of depth at most max_r n_r + W - 2 <= n - 1,
so Higham's k(n) = n still bounds it; a Chan-style merge of (n_r, mu_r, M2_r)
costs a few roundings per merge, W - 1 merges, also within it.
"""
from __future__ import annotations

import torch

from bn_invariants.invariants.assertions import assert_close
from bn_invariants.invariants.bounds import (elementwise_tolerance, gradient_sum_tolerance,
                                             output_tolerance, parameter_gradient_tolerances)
from bn_invariants.invariants.distributed.run import (FAMILY, K_OF_N, affine, run_checked,
                                                      stacked, summed)
from bn_invariants.invariants.distributed.tasks import forward_only, train_step
from bn_invariants.invariants.reference import closed_form, per_channel_sum, statistics
from bn_invariants.invariants.preconditions import AFFINE
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.step import rounded_cotangent

def check_forward(subject, case, reference):
    p = case.problem
    answers, ctx = run_checked(subject, case, forward_only)
    y = stacked(answers, "y", ctx)
    stats = statistics(p.values, p.options.eps)
    gamma, beta = affine(answers[0], p.values.dim())
    expected = stats.xhat if gamma is None else stats.xhat * gamma + beta
    tol = output_tolerance(p.dtype, stats, gamma, beta)
    assert_close("y (ranks concatenated)", y, expected, tol, ctx)


DISTRIBUTED_FORWARD = register(Invariant(
    id="distributed-forward",
    title="Across W processes, each rank's output is its slice of the global batch norm",
    family=FAMILY,
    statement=(r"\mathrm{SyncBN}(x_r) = \mathrm{BN}(x_1 \,\|\, \dots \,\|\, x_W)_r,\quad "
               r"\mu = \tfrac1n\sum_r\sum_{i\in r}x_i,\ n = \sum_r n_r"),
    why=("A batch norm synchronised over W processes normalises with the statistics of the "
         "concatenated batch: the mean weighs each rank by its slice size, the variance adds "
         "the spread between the ranks' means to the spread within them. Averaging per-rank "
         "means unweighted, or dropping the between-rank term, is right only for equal slices "
         "with equal means; the slices here are uneven, some single samples, one possibly empty."),
    source=("Ioffe & Szegedy (2015), Algorithm 1 over the global batch; torch.nn.SyncBatchNorm "
            "documentation; Chan, Golub & LeVeque (1979) for merging moments"),
    applies=("training mode; W = 2 to 4 ranks (gloo on the CPU, NCCL on CUDA); uneven slices; "
             "float32 and float64; every rank, layout and option"),
    tolerance=f"the output-agreement bound of the global batch, elementwise; {K_OF_N}",
    tolerance_formula=(r"|y_i - \hat y_i| \le 4\big[(u_{acc}k(n)+u_{out})(1+|\mu|/s+|\hat x_i|)"
                       r"|\gamma| + u_{out}|\beta|\big] + \text{tiny},\quad k(n) = n \ge "
                       r"\max_r n_r + W - 1"),
    check=check_forward,
    kind="distributed",
))


def check_input_gradient(subject, case, reference):
    p = case.problem
    answers, ctx = run_checked(subject, case, train_step)
    dx = stacked(answers, "dx", ctx)
    stats = statistics(p.values, p.options.eps)
    gamma, _ = affine(answers[0], p.values.dim())
    g = rounded_cotangent(p)
    sum_tol = gradient_sum_tolerance(p.dtype, stats, g, gamma)
    assert_close("sum over ranks of sum_i dl/dx_i", per_channel_sum(dx),
                 torch.zeros_like(sum_tol), sum_tol, ctx)
    assert_close("dl/dx (ranks concatenated)", dx, closed_form(stats, g, gamma),
                 elementwise_tolerance(p.dtype, stats, g, gamma), ctx)


DISTRIBUTED_INPUT_GRADIENT = register(Invariant(
    id="distributed-input-gradient",
    title="Across W processes, each rank's input gradient is its slice of the global one",
    family=FAMILY,
    statement=(r"\frac{\partial \ell}{\partial x_i} = \frac{\gamma}{s}\Big(g_i - \bar g - "
               r"\hat x_i\,\overline{g\hat x}\Big)\ \text{with global means, so}\ "
               r"\sum_r\sum_{i\in r}\frac{\partial \ell}{\partial x_i} = 0"),
    why=("The distributed form of the paper's point: the statistics depend on every rank's "
         "samples, so the gradient through them needs the global means of g and g x̂, which "
         "backward must all-reduce. A backward that uses its own slice's means leaves each "
         "rank's input gradient summing to −(γ/s) Σᵢ x̂ᵢ mean_r(g x̂), which does not cancel "
         "over the ranks: a bias before the batch norm receives a non-zero gradient globally."),
    source=("Ioffe & Szegedy (2015), sections 2 and 3; torch.nn.modules._functions.SyncBatchNorm."
            "backward (all-reduce of sum_dy and sum_dy_xmu)"),
    applies="training mode; W = 2 to 4 ranks, uneven slices; float32 and float64; every option",
    tolerance=("the sum over all ranks: gradient_sum_tolerance of the global batch; each "
               f"element: the input-gradient-closed-form bound of the global batch; {K_OF_N}"),
    tolerance_formula=(r"\Big|\sum_{r,i}dx_i\Big|_c \le \tau^{grad}_c(x_1\|\dots\|x_W),\quad "
                       r"|dx_i - \widehat{dx}_i| \le \tau^{dx}_i,\quad k(n) = n"),
    check=check_input_gradient,
    kind="distributed",
))


def check_parameter_gradients(subject, case, reference):
    p = case.problem
    answers, ctx = run_checked(subject, case, train_step)
    stats = statistics(p.values, p.options.eps)
    g = rounded_cotangent(p)
    beta_tol, gamma_tol = parameter_gradient_tolerances(p.dtype, stats, g)
    for name, what, expected, tol in (("bias_grad", "dl/dbeta", per_channel_sum(g), beta_tol),
                                      ("weight_grad", "dl/dgamma",
                                       per_channel_sum(g * stats.xhat), gamma_tol)):
        assert_close(f"{what} summed over ranks", summed(answers, name, ctx), expected, tol, ctx)


DISTRIBUTED_PARAMETER_GRADIENTS = register(Invariant(
    id="distributed-parameter-gradients",
    title="Across W processes, the ranks' γ and β gradients sum to the global ones",
    family=FAMILY,
    statement=(r"\sum_r \frac{\partial \ell_r}{\partial \gamma_c} = \sum_{i} g_i \hat x_i,"
               r"\qquad \sum_r \frac{\partial \ell_r}{\partial \beta_c} = \sum_{i} g_i"),
    why=("Each rank's γ and β gradients are its slice's sums of g x̂ and g, with x̂ normalised by "
         "the global statistics; data-parallel training all-reduces them, so their sum must be "
         "the single-process gradient. A batch norm that all-reduces them itself as well is "
         "counted W times."),
    source="Ioffe & Szegedy (2015), section 3; torch.nn.parallel.DistributedDataParallel",
    applies=("training mode", AFFINE, "W = 2 to 4 ranks, uneven slices", "float32 and float64"),
    tolerance=("the parameter-gradients bound of the global batch (each rank's sum is bounded "
               f"with k(n_r) ≤ k(n), the W-term float64 sum adds far less); {K_OF_N}"),
    tolerance_formula=(r"\tau^\beta_c = 4(u_{acc}k(n)+u_{out})\sum_{i}|g_i|,\quad "
                       r"\tau^\gamma_c = 4(u_{acc}k(n)+u_{out})\sum_{i}|g_i|"
                       r"(1 + |\mu_c|/s_c + |\hat x_i|)"),
    check=check_parameter_gradients,
    kind="distributed",
))
