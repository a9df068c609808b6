"""Eval mode with the batch's own statistics stored reproduces training mode."""
from __future__ import annotations

from bn_invariants.invariants.assertions import assert_close
from bn_invariants.invariants.step import eval_map, set_running_stats
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.preconditions import TRACKED
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import output_tolerance


def check(subject, case, reference):
    p = case.problem
    x = p.values
    stats = statistics(x, p.options.eps)
    evaluating = build(subject, p)
    set_running_stats(evaluating, subject, p, stats.mean.flatten(), stats.var.flatten())
    y_eval = evaluating.eval()(p.input())
    training = build(subject, p)
    y_train = training(p.input())
    affine = eval_map(evaluating, x.dim(), p.options.eps)
    gamma, beta = affine_of(training, x.dim())
    exact_train = stats.xhat if gamma is None else gamma * stats.xhat + beta
    stored_rounding = (affine(x) - exact_train).abs()
    tol = (affine.tolerance(p.dtype, x) + stored_rounding
           + output_tolerance(p.dtype, stats, gamma, beta))
    assert_close("eval-mode output", y_eval, y_train.detach(), tol,
                 f"{context(subject, p)}; running statistics set to the batch's (biased) ones")


EVAL_MATCHES_TRAIN_WITH_BATCH_STATS = register(Invariant(
    id="eval-matches-train-with-batch-stats",
    title="Eval mode with the batch's statistics stored equals training mode",
    family="eval mode",
    statement=(r"\hat\mu = \mu_B,\ \hat\sigma^2 = \sigma^2_B \;\Rightarrow\; "
               r"\mathrm{BN}_{eval}(x) = \mathrm{BN}_{train}(x)"),
    why=("Training mode normalises with the batch's mean and biased variance, eval mode with "
         "the stored ones; the two modes are the same formula fed different statistics. "
         "Storing the batch's own statistics must therefore give the training output: this "
         "ties the eval path to the training path, catching an eval mode that applies eps, "
         "the square root, or the affine parameters differently."),
    source="Ioffe & Szegedy (2015), Algorithm 1 and Algorithm 2",
    applies=(TRACKED, "running statistics set to the batch's mean and biased "
             "variance (float64, rounded to the buffers' dtype); every rank, dtype, layout "
             "and option"),
    tolerance=("the eval-affine-map tolerance plus the training output tolerance, plus the "
               "exact effect of rounding μ_B and σ²_B to the buffers' dtype (|a x + c − "
               "(γ x̂ + β)| computed in float64 from the stored values)"),
    tolerance_formula=(r"\tau_i = \tau^{eval}_i + \tau^{out}_i + |a_c x_i + c_c - "
                       r"(\gamma_c \hat x_i + \beta_c)|"),
    check=check,
))
