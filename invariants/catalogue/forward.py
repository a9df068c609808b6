"""Forward pass in training mode: the output's moments, equivariance, independence, affine."""
from __future__ import annotations

from dataclasses import replace

import torch
from hypothesis import strategies as st

from bn_invariants.strategies.shapes import MAX_CHANNELS
from bn_invariants.strategies import streams
from bn_invariants.invariants.params import RedrawnChannel, drawn
from bn_invariants.invariants.assertions import assert_identical
from bn_invariants.invariants.assertions import InvariantViolation, assert_close, assert_finite_where
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import exact_output, reduce_dims, statistics
from bn_invariants.invariants.preconditions import AFFINE, TWO_SAMPLES, TWO_CHANNELS
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import SAFETY, output_tolerance
from bn_invariants.strategies import unit_roundoff

U64 = unit_roundoff("float64")


def forward(subject, problem, values=None, options=None):
    """(y, module): one training-mode forward pass of a fresh module on ``values``."""
    module = build(subject, problem, options=options)
    return module(problem.input(values)), module


def tolerance_of(problem, values, module):
    """The elementwise output tolerance of a forward pass of ``module`` on ``values``."""
    stats = statistics(values, problem.options.eps)
    gamma, beta = affine_of(module, values.dim())
    return output_tolerance(problem.dtype, stats, gamma, beta)




def reproducible(subject, problem, y) -> bool:
    """Whether a second fresh module gives ``y`` bitwise on the same input: the
    precondition for demanding bitwise agreement between calls."""
    again, _ = forward(subject, problem)
    return bool(torch.equal(again.detach().cpu(), y.detach().cpu()))


# --- output-moments -------------------------------------------------------------------

def check_moments(subject, case, reference):
    p = case.problem
    y, module = forward(subject, p)
    stats = statistics(p.values, p.options.eps)
    gamma, beta = affine_of(module, p.values.dim())
    g = torch.ones_like(stats.mean) if gamma is None else gamma
    b = torch.zeros_like(stats.mean) if beta is None else beta
    tau = output_tolerance(p.dtype, stats, gamma, beta)
    dims, n = reduce_dims(p.values.dim()), stats.n
    assert_finite_where("BN(x)", y, exact_output(stats, gamma, beta), context(subject, p))
    y64 = y.detach().to("cpu", torch.float64)
    mean = y64.mean(dims, keepdim=True)
    centred = y64 - mean
    var = (centred ** 2).mean(dims, keepdim=True)
    spread = tau + tau.mean(dims, keepdim=True)            # bound on |delta_i - mean(delta)|
    mean_tol = tau.mean(dims, keepdim=True) + SAFETY * n * U64 * y64.abs().mean(dims, keepdim=True)
    var_tol = ((2 * (g * stats.xhat).abs() * spread + spread ** 2).mean(dims, keepdim=True)
               + SAFETY * n * U64 * var)
    ctx = context(subject, p)
    assert_close("mean(y) per channel", mean.flatten(), b.flatten(), mean_tol.flatten(), ctx)
    expected_var = g ** 2 * stats.var / (stats.var + p.options.eps)
    assert_close("var(y) per channel", var.flatten(), expected_var.flatten(),
                 var_tol.flatten(), ctx)


OUTPUT_MOMENTS = register(Invariant(
    id="output-moments",
    title="Mean β and variance γ²σ²/(σ²+ε) of the output, per channel",
    family="forward, training mode",
    statement=(r"\frac1n\sum_{i\in c} y_i = \beta_c,\qquad \frac1n\sum_{i\in c}(y_i-\bar y_c)^2"
               r" = \gamma_c^2\,\frac{\sigma_c^2}{\sigma_c^2+\varepsilon}"),
    why=("x̂ has mean exactly 0 and mean square σ²/(σ²+ε) over the batch (not 1: ε shrinks "
         "it, and a constant channel has variance 0); y = γx̂ + β shifts and scales those. "
         "This is the normalisation the paper's Algorithm 1 promises, checked on the output "
         "alone."),
    source="Ioffe & Szegedy (2015), Algorithm 1",
    applies="training mode; every rank, dtype, layout and option",
    tolerance=("with y_i = y*_i + δ_i, |δ_i| ≤ τ_i (the output tolerance): the mean may be off "
               "by the mean of τ; the variance by mean(2|γx̂_i|d_i + d_i²), d_i = τ_i + mean(τ) "
               "bounding |δ_i − mean δ|; plus the float64 rounding of the moments themselves"),
    tolerance_formula=(r"|\bar y_c-\beta_c| \le \overline{\tau}_c + 4nu_{64}\overline{|y|}_c,\;"
                       r"|\mathrm{var}\,y_c - \gamma_c^2\tfrac{\sigma^2_c}{\sigma^2_c+\varepsilon}|"
                       r" \le \tfrac1n\sum_{i\in c}(2|\gamma_c\hat x_i|d_i + d_i^2) + "
                       r"4nu_{64}\mathrm{var}\,y_c,\; d_i = \tau_i + \overline{\tau}_c"),
    check=check_moments,
))


# --- batch-permutation-equivariance ---------------------------------------------------

def batch_permutation(problem) -> torch.Tensor:
    """A seeded permutation of the batch indices that moves at least one of them."""
    n = problem.shape[0]
    perm = torch.randperm(n, generator=problem.generator(streams.BATCH_PERMUTATION))
    if torch.equal(perm, torch.arange(n)):
        perm = perm.roll(1)
    return perm


def check_permutation(subject, case, reference):
    p = case.problem
    perm = batch_permutation(p)
    y, module = forward(subject, p)
    y_perm, _ = forward(subject, p, p.values[perm])
    tau = tolerance_of(p, p.values, module)[perm]
    assert_close("BN(x[perm])", y_perm, y.detach()[perm], 2 * tau,
                 f"{context(subject, p)}; perm {perm.tolist()[:8]}")


BATCH_PERMUTATION = register(Invariant(
    id="batch-permutation-equivariance",
    title="Permuting the batch permutes the output",
    family="forward, training mode",
    statement=r"\mathrm{BN}(P x) = P\,\mathrm{BN}(x) \text{ for every permutation } P \text{ of the batch}",
    why=("The batch statistics are sums over the batch, which do not depend on the order of "
         "the samples; each output is then a function of its own input and those statistics. "
         "A batch norm that mixes samples up or treats sample 0 specially breaks this."),
    source="Ioffe & Szegedy (2015), Algorithm 1 (the mini-batch is a set)",
    applies=("training mode", TWO_SAMPLES, "every rank, dtype, layout and option"),
    tolerance=("the output tolerance of each of the two passes: the permuted batch is summed "
               "in another order, so the statistics may round differently"),
    tolerance_formula=r"\tau_i = 2\,\tau^{out}_i(x)",
    check=check_permutation,
))


# --- channel-independence -------------------------------------------------------------

def replace_channel(problem, channel: int, scale: float, offset: float) -> torch.Tensor:
    """The problem's values with channel ``channel`` redrawn: normal * scale + offset,
    rounded to the dtype (float64)."""
    values = problem.values.clone()
    fresh = torch.randn(values[:, channel].shape, generator=problem.generator(streams.REPLACED_CHANNEL),
                        dtype=torch.float64)
    values[:, channel] = (fresh * scale + offset).to(problem.torch_dtype).double()
    return values


def check_channels(subject, case, reference):
    p = case.problem
    j = case.params.channel % p.num_features
    changed = replace_channel(p, j, case.params.scale, case.params.offset)
    y, module = forward(subject, p)
    y_changed, _ = forward(subject, p, changed)
    others = [c for c in range(p.num_features) if c != j]
    ctx = f"{context(subject, p)}; channel {j} redrawn"
    if reproducible(subject, p, y):
        assert_identical("BN(x')[:, others]", y_changed[:, others], y.detach()[:, others], ctx)
    else:
        tau = tolerance_of(p, p.values, module)[:, others]
        assert_close("BN(x')[:, others]", y_changed[:, others], y.detach()[:, others], 2 * tau,
                     f"{ctx}; the subject is not bitwise reproducible here")


CHANNEL_INDEPENDENCE = register(Invariant(
    id="channel-independence",
    title="Channels are normalised independently",
    family="forward, training mode",
    statement=(r"x'_{:,c} = x_{:,c}\ \forall c \ne j \;\Rightarrow\; "
               r"\mathrm{BN}(x')_{:,c} = \mathrm{BN}(x)_{:,c}\ \forall c \ne j"),
    why=("Each channel has its own mean, variance, γ and β; nothing is shared across "
         "channels. Redrawing one channel (another scale and offset) must leave every other "
         "channel's output as it was: a kernel that reads a neighbour's statistics, or "
         "normalises over all channels together, breaks this."),
    source="Ioffe & Szegedy (2015), section 3.2 (per feature map, per activation)",
    applies=("training mode", TWO_CHANNELS, "every rank, dtype, layout and option"),
    tolerance=("exact (bitwise) when the subject is bitwise reproducible on the original input "
               "(checked with a third pass): the other channels see identical data, shape and "
               "layout, so a deterministic kernel repeats the same operations on them. Where "
               "it is not reproducible, twice the output tolerance"),
    tolerance_formula=r"\tau = 0 \text{ (reproducible)},\ \text{else } 2\,\tau^{out}_i",
    params=drawn(RedrawnChannel, channel=st.integers(0, MAX_CHANNELS - 1),
                 scale=st.sampled_from((4.0, 0.25, 16.0, 1 / 16)),
                 offset=st.sampled_from((3.0, 0.0, -8.0))),
    check=check_channels,
))


# --- affine-semantics -----------------------------------------------------------------

def check_affine(subject, case, reference):
    p = case.problem
    y, module = forward(subject, p, options=replace(p.options, affine=True))
    xhat, plain = forward(subject, p, options=replace(p.options, affine=False))
    gamma, beta = affine_of(module, p.values.dim())
    if gamma is None:
        raise InvariantViolation(f"weight, bias=None, but should be parameters with "
                                 f"affine=True [{context(subject, p)}]")
    expected = gamma * xhat.detach().to("cpu", torch.float64) + beta
    tau = tolerance_of(p, p.values, module) + gamma.abs() * tolerance_of(p, p.values, plain)
    assert_close("BN_affine(x)", y, expected, tau, context(subject, p))


AFFINE_SEMANTICS = register(Invariant(
    id="affine-semantics",
    title="The affine output is γ times the plain output plus β",
    family="forward, training mode",
    statement=r"\mathrm{BN}_{\gamma,\beta}(x) = \gamma\,\mathrm{BN}_{\text{affine=False}}(x) + \beta",
    why=("The learned scale and shift are applied after the normalisation, per channel: "
         "y = γx̂ + β. With γ and β drawn away from (1, 0), including negative γ, a subject "
         "that applies them in the wrong order ((x̂ + β)γ), to the wrong channel, or not at "
         "all is caught."),
    source="Ioffe & Szegedy (2015), Algorithm 1, last line",
    applies=("training mode", AFFINE, "every rank, dtype and layout",
             "the plain pass is built with affine=False"),
    tolerance=("the output tolerance of the affine pass plus |γ| times that of the plain pass"),
    tolerance_formula=r"\tau_i = \tau^{out}_i(\gamma,\beta) + |\gamma_c|\,\tau^{out}_i(1, 0)",
    check=check_affine,
))
