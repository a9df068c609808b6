"""Every error bound of the suite: derived from unit roundoff, reduction length and conditioning.

Notation: u_acc is the unit roundoff of the dtype statistics are accumulated in
(float32 for half types, the standard), u_out that of the input and output dtype,
n the values per channel, s = sqrt(var + eps), |mu|/s the channel's conditioning.
The model: statistics accumulated in u_acc, the elementwise stage (x - mu) * gamma / s
+ beta allowed to run in the input dtype.
"""
from __future__ import annotations

import torch

import re
from dataclasses import dataclass

from bn_invariants.invariants.conventions import declared
from bn_invariants.invariants.assertions import channels_reaching
from bn_invariants.invariants.reference import (Statistics, closed_form, gradient_means,
                                                per_channel_sum, reduce_dims, statistics)
from bn_invariants.strategies import (accumulation_dtype, finfo, summation_factor,
                                     ulp, unit_roundoff)

SAFETY = 4.0
"""Covers the constant factors of the first-order bounds (mean, variance, sqrt,
division, affine: each a few roundings) and the float64 reference's own error."""


ULPS = 2
"""Units in the last place allowed on top of the float32 part: an output computed in
float32 and rounded once is within half an ulp of its float32 value, the correctly
rounded reference within half an ulp of the exact one, and at a binade boundary one
of those ulps can be twice the other: 1/2 * 2 + 1/2 <= 2."""

MAP_ROUNDINGS = 6
"""Roundings of the eval-mode elementwise stage in the input dtype: x - rm, 1/sqrt(rv + eps)
or a rounded to the input dtype, the products by it and by gamma, the sum with beta (five),
plus one for second-order terms and the float64 reference's own error."""
FORMULA_CONSTANTS = {"SAFETY": SAFETY, "ULPS": ULPS, "MAP_ROUNDINGS": MAP_ROUNDINGS}
"""The constants a tolerance formula names: the docs render their values from here."""


def tex(template: str) -> str:
    """A tolerance formula with each ``@{NAME}`` replaced by the value of that constant
    (``@{SAFETY}`` -> 4), so the catalogue shows the constants the code uses."""
    return re.sub(r"@\{([A-Z_]+)\}", lambda m: f"{FORMULA_CONSTANTS[m.group(1)]:g}", template)


@dataclass(frozen=True)
class Bound:
    """A bound's documentation as the catalogue shows it: in words and as a formula."""

    words: str
    formula: str


def conditioning(stats: Statistics) -> torch.Tensor:
    """|mu|/s per channel, (1, C, 1, ...): how much a relative error of the mean is magnified."""
    return stats.mean.abs() / stats.std


def spread_ratio(stats: Statistics) -> torch.Tensor:
    """|mu|/sigma per channel (sigma = sqrt(var), no eps; inf for a constant channel):
    whether a sum's rounding errors are random (``summation_factor``)."""
    sigma = stats.var.sqrt()
    return torch.where(sigma > 0, stats.mean.abs() / sigma.clamp_min(1e-300),
                       torch.full_like(sigma, float("inf")))


def relative_error(dtype: str, n: int, ratio=float("inf")):
    """u_acc k(n) + u_out: the relative error of a statistic accumulated over n values
    in the accumulation dtype, plus one rounding of the elementwise stage
    (centering, scaling, affine), which may run in the input dtype.  ``ratio`` is
    |mu|/sigma (``spread_ratio``): with it k(n) is 2 sqrt(n) where rounding errors are
    random, per channel; without it, the worst case n."""
    u_acc = unit_roundoff(accumulation_dtype(dtype))
    return u_acc * summation_factor(n, u_acc, ratio) + unit_roundoff(dtype)


def channel_error(dtype: str, stats: Statistics):
    """``relative_error`` of each channel of ``stats``, (1, C, 1, ...).  The backward's
    sums of g are in the random regime too: the suite's cotangents have |mean g| at most
    twice their spread (``informative``) or sum exactly (``ones``), and n u 3 <= 1/16
    for every length drawn (n <= 10^5 in float32)."""
    return relative_error(dtype, stats.n, spread_ratio(stats))


def statistic_error(dtype: str, n: int, ratio=float("inf")):
    """u_acc (k(n) + 1): the relative error of a batch statistic (a mean, or a variance
    relative to its conditioning) accumulated over n values in the accumulation dtype,
    with x - mu formed there too.  Statistics of a half-precision input are accumulated
    in float32 by the standard, so u_out does not enter: rounding them or x - mu to the
    input dtype is a bug (HalfStatisticsBatchNorm)."""
    u_acc = unit_roundoff(accumulation_dtype(dtype))
    return u_acc * (summation_factor(n, u_acc, ratio) + 1)


def output_tolerance(dtype: str, stats: Statistics, weight=None, bias=None):
    """Bound on |y - y_exact| for a normalised output, elementwise:

    SAFETY * [(u_acc k(n) + u_out)(1 + |mu|/s + |xhat|)|gamma| + u_out |beta|] + tiny

    A mean off by e (|mu| + s) moves xhat by e (1 + |mu|/s); a relative error e
    in var scales xhat by about e |xhat|; centering x - mu in the input dtype costs
    u_out |mu|/s more and the affine map u_out (|gamma xhat| + |beta|).  ``tiny``
    (the smallest normal number) is the absolute rounding of subnormal outputs.
    """
    gamma = 1.0 if weight is None else weight.abs()
    beta = 0.0 if bias is None else bias.abs()
    scaled = channel_error(dtype, stats) * (1 + conditioning(stats) + stats.xhat.abs()) * gamma
    return SAFETY * (scaled + unit_roundoff(dtype) * beta) + finfo(dtype).tiny


def shifted_input_rounding(dtype: str, shifted_input, stats: Statistics, weight=None):
    """Change of the exact output when x + b is rounded to ``dtype``:
    each |delta_i| <= u |x_i + b|, moving xhat_i by at most
    u max|x + b| (2 + |xhat_i|) / s.  Zero on a dyadic grid, where x + b is exact."""
    u = unit_roundoff(dtype)
    dims = (0,) + tuple(range(2, shifted_input.dim()))
    largest = shifted_input.abs().amax(dims, keepdim=True)
    gamma = 1.0 if weight is None else weight.abs()
    return SAFETY * u * largest * (2 + stats.xhat.abs()) / stats.std * gamma


def gradient_sum_tolerance(dtype: str, stats: Statistics, g, weight=None):
    """Bound on |sum_i dl/dx_i| per channel, whose exact value is 0 (``GRADIENT_SUM``).

    dx_i = (gamma/s)(g_i - ḡ - x̂_i c̄), c̄ = mean(g x̂), e = u_acc k(n) + u_out, r = |mu|/s.
    Errors common to the channel (1/s, gamma) multiply a sum that is exactly zero: they
    cancel.  What is left: ḡ, a sum, is off by e mean|g| per term; forming and rounding
    each term costs e (|g_i| + |ḡ| + |x̂_i c̄|); and the mean, off by d <= e (|mu| + s),
    shifts every recomputed x̂_i by d/s, so sum_i x̂_i, exactly 0, becomes n d/s, which
    multiplies the computed c̄.  That c̄ is itself off by (d/s) ḡ (sum g (x - mean) with
    the shifted mean), a second-order term that is not small when e r is not: a channel
    whose mean is one rounding of |mu| off, with s near sqrt(eps), has d/s = u r near 1e-2
    (found at n = 2).  Hence
    SAFETY (|gamma|/s) [e sum_i (|g_i| + |ḡ| + |x̂_i c̄|) + n e (1 + r)(|c̄| + e (1 + r) mean|g|)].
    """
    dims = (0,) + tuple(range(2, g.dim()))
    gamma = 1.0 if weight is None else weight.abs()
    g_mean = g.mean(dims, keepdim=True)
    gx_mean = (g * stats.xhat).mean(dims, keepdim=True)
    e = channel_error(dtype, stats)
    shift = e * (1 + conditioning(stats))
    mass = (g.abs() + g_mean.abs() + stats.xhat.abs() * gx_mean.abs()).sum(dims, keepdim=True)
    centring = stats.n * shift * (gx_mean.abs() + shift * g.abs().mean(dims, keepdim=True))
    bound = SAFETY * (e * mass + centring) * gamma / stats.std
    return bound.flatten() + finfo(dtype).tiny


GRADIENT_SUM = Bound(
    words=("(|γ|/s) times the relative error e = u_acc·k(n) + u_out of each term's statistics "
           "and rounding, on the l1 mass Σ(|gᵢ| + |ḡ| + |x̂ᵢ c̄|), plus the mean's error "
           "e(1 + |μ|/s), which shifts Σx̂ᵢ from 0 to n·e(1 + |μ|/s) and multiplies the "
           "computed c̄, itself off by e(1 + |μ|/s)·mean|g|; the errors common to a channel "
           "(1/s, γ) multiply a sum that is exactly zero and cancel"),
    formula=tex(r"\tau^{grad}_c = @{SAFETY}\,\frac{|\gamma_c|}{s_c}\Big[e\sum_{i\in c}"
                r"\big(|g_i| + |\bar g| + |\hat x_i\,\overline{g\hat x}|\big) + n\,\rho_c\,"
                r"\big(|\overline{g\hat x}| + \rho_c\,\overline{|g|}\big)\Big] + \mathrm{tiny},\quad "
                r"e = u_{acc} k(n) + u_{out},\ \rho_c = e\,(1+|\mu_c|/s_c)"),
)

def half_tolerance(dtype: str, stats, rounded, gamma=None, beta=None):
    """ULPS ulps of the correctly rounded output, plus the error of statistics
    accumulated in float32: SAFETY u_acc [k(n)(1 + |mu|/s + |xhat|)|gamma| + |beta|]."""
    u_acc = unit_roundoff(accumulation_dtype(dtype))
    g = 1.0 if gamma is None else gamma.abs()
    b = 0.0 if beta is None else beta.abs()
    kappa = 1 + conditioning(stats) + stats.xhat.abs()
    k = summation_factor(stats.n, u_acc, spread_ratio(stats))
    accumulated = SAFETY * u_acc * (k * kappa * g + b)
    return ULPS * ulp(rounded, dtype) + accumulated


def ulps_off(y: torch.Tensor, rounded: torch.Tensor, dtype: str) -> float:
    """The largest |y - rounded| in ulps of ``rounded`` (NaN when the shapes differ)."""
    got = y.detach().to("cpu", torch.float64)
    if got.shape != rounded.shape:
        return float("nan")
    return float(((got - rounded).abs() / ulp(rounded, dtype)).max())


# ---- input gradient ------------------------------------------------------------------

def input_gradient_tolerance(dtype: str, stats: Statistics, g, weight=None):
    """Bound on |dl/dx_i - exact| elementwise, for dl/dx_i = (gamma/s)(g_i - mean(g) - xhat_i m),
    m = mean(g xhat).

    With e = u_acc k(n) + u_out (``relative_error``) and r = |mu|/s, first-order terms:
    1/s off by e(1 + r); mean(g) by e mean|g|; xhat_i by e(1 + r + |xhat_i|); m by
    e mean(|g|(1 + r + 2|xhat|)); forming and rounding the combination 2e(|g_i| +
    |mean g| + |xhat_i m|).  With |m| <= mean(|g||xhat|) their sum is at most
    e F_i G_i (|gamma|/s), F_i = 3 + r + |xhat_i|,
    G_i = |g_i| + 1.5 mean|g| + (1 + 2|xhat_i|) mean(|g|(1 + 2|xhat|)).
    """
    dims = (0,) + tuple(range(2, g.dim()))
    gamma = 1.0 if weight is None else weight.abs()
    xa = stats.xhat.abs()
    spread = (g.abs() * (1 + 2 * xa)).mean(dims, keepdim=True)
    mass = g.abs() + 1.5 * g.abs().mean(dims, keepdim=True) + (1 + 2 * xa) * spread
    factor = 3 + conditioning(stats) + xa
    return SAFETY * channel_error(dtype, stats) * factor * mass * gamma / stats.std + finfo(dtype).tiny


def elementwise_tolerance(dtype: str, stats, g, gamma=None) -> torch.Tensor:
    """Bound on |dl/dx_i - closed form_i|, elementwise.

    With rho = (u_acc k(n) + u_out)(1 + |mu|/s), the relative error of a statistic
    and of x̂ recomputed in the input dtype (as in gradient_sum_tolerance):
    1/s is off by rho relative, so every term (g_i, ḡ, x̂_i c̄) is; ḡ is a sum
    off by rho mean|g|; x̂_i is off by rho (1 + |x̂_i|), times |c̄|; c̄ is a sum
    off by rho (mean|g| + mean|g x̂|), times |x̂_i|.  Hence
    SAFETY rho (|gamma|/s) [|g_i| + |ḡ| + mean|g| + (1 + 2|x̂_i|)|c̄|
    + |x̂_i|(mean|g| + mean|g x̂|)] + tiny.
    """
    g_mean, gx_mean, g_abs, gx_abs = gradient_means(stats, g)
    xa = stats.xhat.abs()
    mass = (g.abs() + g_mean.abs() + g_abs + (1 + 2 * xa) * gx_mean.abs()
            + xa * (g_abs + gx_abs))
    rho = channel_error(dtype, stats) * (1 + conditioning(stats))
    scale = (1.0 if gamma is None else gamma.abs()) / stats.std
    return SAFETY * rho * scale * mass + finfo(dtype).tiny


def gradient_terms_in_range(dtype: str, stats, g, gamma=None) -> torch.Tensor:
    """(C,) bool: the channels whose exact dl/dx_i, with its elementwise tolerance, stays
    inside the dtype's range.  Elsewhere ±inf is a term rounded, and dl/db, their sum,
    reads ±inf or inf - inf = NaN: such a channel says nothing of the gradient sum."""
    return ~channels_reaching(closed_form(stats, g, gamma),
                              elementwise_tolerance(dtype, stats, g, gamma), finfo(dtype).max)


def reference_xhat_error(stats) -> torch.Tensor:
    """Bound on the float64 x̂'s own error, elementwise: its mean and s are statistics
    accumulated in float64, rho_64 (1 + |mu|/s + |x̂|).  Negligible beside a half or
    single subject's error, not beside a float64 one (e.g. a constant channel, whose
    exact x̂ is 0 but whose float64 mean may be one rounding off)."""
    rho = channel_error("float64", stats)
    return SAFETY * rho * (1 + conditioning(stats) + stats.xhat.abs())


def radial_reference_error(stats, g, gamma, eps: float) -> torch.Tensor:
    """Bound on the radial value's error from the float64 x̂'s own error, (C,)."""
    dims = reduce_dims(g.dim())
    gamma = 1.0 if gamma is None else gamma.abs()
    ratio = eps / (stats.var + eps) if eps > 0 else torch.zeros_like(stats.var)
    return (gamma * ratio * (g.abs() * reference_xhat_error(stats)).sum(dims, keepdim=True)).flatten()


def radial_tolerance(problem, magnitude, dx, dx_tol, forward_length: int):
    """Bound on |sum_i dl/dx_i (W u)_i - sum_i dl/dx_i x_i| per channel, (C,).

    ``magnitude`` is |W| |u| (or |a u|) elementwise: the error of each dl/dx_i is
    weighted by it; the backward's reduction over n adds (u_acc k(n) + u_out) of
    sum |dl/dx| |W||u|, and x = fl(W u), a reduction over ``forward_length``, is off
    by (u_acc k(K) + u_out) |W||u| plus, where it is subnormal, the spacing u_sub."""
    dims = reduce_dims(dx.dim())
    rel = (relative_error(problem.dtype, problem.reduction_length)
           + relative_error(problem.dtype, forward_length))
    spacing = finfo(problem.dtype).tiny * finfo(problem.dtype).eps
    total = magnitude * (dx_tol + SAFETY * rel * dx.abs()) + SAFETY * spacing * dx.abs()
    return total.sum(dims).flatten() + finfo(problem.dtype).tiny


# ---- parameter gradients and running statistics --------------------------------------

def parameter_gradient_tolerances(dtype: str, stats, g, beta_dtype: str | None = None):
    """Bounds on dl/dβ = Σ g and dl/dγ = Σ g x̂ per channel, (C,) each, as in
    parameter-gradients: each sum's l1 mass times its relative error
    SAFETY (u_acc k(n) + u_out), x̂ᵢ carrying (1 + |μ|/s + |x̂ᵢ|) of it.
    ``beta_dtype`` (default ``dtype``) sets u_out and the subnormal rounding of dβ, a
    sum with no elementwise stage."""
    beta_dtype = beta_dtype or dtype
    kappa = 1 + conditioning(stats) + stats.xhat.abs()
    beta_e = channel_error(beta_dtype, stats).flatten()
    beta_tol = SAFETY * beta_e * per_channel_sum(g.abs()) + finfo(beta_dtype).tiny
    gamma_tol = (SAFETY * channel_error(dtype, stats).flatten() * per_channel_sum(g.abs() * kappa)
                 + finfo(dtype).tiny)
    return beta_tol, gamma_tol


def running_tolerances(compute: str, stored: str, stats: Statistics, factor: float,
                       running_mean0, running_var0):
    """Bounds on the running mean and variance after one training step, per channel (C,).

    The batch mean is off by e(|mu| + sigma) (mean|x| <= |mu| + sigma); the biased
    variance by e(|mu| + sigma)(sigma + e(|mu| + sigma)): rounding x - mu and the
    sum cost e sigma(|mu| + sigma), the mean's error adds its square.  e is
    ``statistic_error(compute, n)``; ``factor`` (the momentum) scales both, n/(n-1)
    the variance; updating a buffer stored in ``stored`` rounds each product once.
    The variance may be formed about the mean as stored (torch does, with half
    buffers): its centre is then off by u_stored |mu| more, which adds its square.
    """
    e = statistic_error(compute, stats.n, spread_ratio(stats)).flatten()
    u = unit_roundoff(stored)
    mu, sigma = stats.mean.abs().flatten(), stats.var.sqrt().flatten()
    bessel = declared().variance_factor(stats.n)
    mean_error = e * (mu + sigma)
    centre_error = mean_error + u * mu
    var_error = (mean_error * sigma + centre_error ** 2) * bessel
    unbiased = stats.var.flatten() * bessel
    tiny = finfo(stored).tiny
    tol_mean = SAFETY * (factor * mean_error
                         + u * ((1 - factor) * running_mean0.abs() + factor * mu)) + tiny
    tol_var = SAFETY * (factor * var_error
                        + u * ((1 - factor) * running_var0.abs() + factor * unbiased)) + tiny
    return tol_mean, tol_var


@dataclass(frozen=True)
class BatchStatistic:
    """One statistic of one batch as folded into a running buffer: its exact value
    and a bound on its computed error, per channel (float64, (C,))."""

    value: torch.Tensor
    error: torch.Tensor


def batch_statistics(values: torch.Tensor, dtype: str, eps: float, centre: str | None = None):
    """(mean, unbiased variance) of a batch as BatchStatistics.

    The mean, accumulated over n values, is off by at most SAFETY u_acc (k(n) + 1)
    (|mu| + sigma) (sum of |x|, n |mu| + n sigma at most).  The biased variance is
    off by SAFETY rel (sigma^2 + sigma |mu|) (n u kappa for an updating algorithm,
    kappa <= 1 + |mu|/sigma) plus the square of its centre's error (two-pass: the sum
    of (x - c)^2 is n sigma^2 + n (c - mu)^2); the factor n / (n - 1) scales both.
    ``centre``: the dtype the mean may be rounded to before the variance is formed
    about it (torch rounds it to its half-precision buffers), adding u |mu| to the
    centre's error; None: the accumulation dtype, nothing added.
    """
    stats = statistics(values, eps)
    n = stats.n
    mu, var = stats.mean.flatten(), stats.var.flatten()
    sigma = var.sqrt()
    rel = statistic_error(dtype, n, spread_ratio(stats)).flatten()
    mean_error = SAFETY * rel * (mu.abs() + sigma)
    rounded = 0.0 if centre is None else SAFETY * unit_roundoff(centre) * mu.abs()
    var_error = SAFETY * rel * (var + sigma * mu.abs()) + (mean_error + rounded) ** 2
    bessel = declared().variance_factor(n)  # n/(n-1) unless a biased running_var is declared
    return BatchStatistic(mu, mean_error), BatchStatistic(var * bessel, var_error * bessel)


def running_update(start: torch.Tensor, steps, buffer_dtype: str):
    """(exact, bound) of a running buffer after r <- (1 - f) r + f s for each
    (f, BatchStatistic s) in ``steps``, from ``start`` (float64, as stored).

    Each step carries the statistic's error, scaled by f, a few roundings of the
    update in the buffer's dtype, SAFETY u_buf (|r| + f |s|) (which covers both
    (1 - f) r + f s and the lerp form r + f (s - r)), and the absolute rounding of a
    subnormal result; earlier errors shrink by (1 - f).  Where the statistic or the
    result may pass the dtype's largest finite value, an infinity is a correct
    rounding: the bound there is infinite (and stays so).
    """
    u_buf, info = unit_roundoff(buffer_dtype), finfo(buffer_dtype)
    exact, bound = start.clone(), torch.zeros_like(start)
    for f, stat in steps:
        rounding = SAFETY * u_buf * (exact.abs() + f * stat.value.abs()) + info.tiny
        bound = (1 - f) * bound + f * stat.error + rounding
        exact = (1 - f) * exact + f * stat.value
        reach = torch.maximum(stat.value.abs() + stat.error, exact.abs() + bound)
        bound = torch.where(reach * (1 + u_buf) >= info.max, float("inf"), bound)
    return exact, bound


def eval_map_tolerance(dtype: str, a, mean, beta, x: torch.Tensor) -> torch.Tensor:
    """Bound on |y - (a x + c)| elementwise for an eval-mode map with running mean ``mean``:
    SAFETY u_acc |a| (|x| + |rm|) + MAP_ROUNDINGS u_out (|a| (|x| + |rm|) + |beta|)
    + tiny (1 + |a|).

    1/sqrt(rv + eps) is a per-channel statistic, formed in the accumulation dtype
    (a few roundings, u_acc); the elementwise stage, (x - rm) a + beta or
    a x + (beta - a rm), may run in the input dtype, each of its roundings at most
    u_out times |a| (|x| + |rm|) + |beta|.  tiny (1 + |a|) is the absolute rounding
    of a subnormal intermediate, scaled by a if it happens before it.
    """
    u_out, u_acc = unit_roundoff(dtype), unit_roundoff(accumulation_dtype(dtype))
    spread = a.abs() * (x.abs() + mean.abs())
    return (SAFETY * u_acc * spread + MAP_ROUNDINGS * u_out * (spread + beta.abs())
            + finfo(dtype).tiny * (1 + a.abs()))

