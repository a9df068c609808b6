"""Tolerances derived from unit roundoff, reduction length and conditioning.

Notation: u_acc is the unit roundoff of the dtype statistics are accumulated in
(float32 for half types, the standard), u_out that of the input and output dtype,
n the values per channel, s = sqrt(var + eps), |mu|/s the channel's conditioning.
The model: statistics accumulated in u_acc, the elementwise stage (x - mu) * gamma / s
+ beta allowed to run in the input dtype.
"""
from __future__ import annotations

import torch

from bn_invariants.strategies import accumulation_dtype, finfo, unit_roundoff

SAFETY = 4.0
"""Covers the constant factors of the first-order bounds (mean, variance, sqrt,
division, affine: each a few roundings) and the float64 reference's own error."""


def summation_factor(n: int) -> float:
    """k(n) = n: the worst-case relative error of summing n terms in any order is
    below (n - 1) u sum|x_i| (Higham 2002, section 4.2).  Pairwise or Welford
    implementations do better; none does worse."""
    return float(max(n, 1))


def relative_error(dtype: str, n: int) -> float:
    """u_acc k(n) + u_out: the relative error of a statistic accumulated over n values
    in the accumulation dtype, plus one rounding of the elementwise stage
    (centering, scaling, affine), which may run in the input dtype."""
    u_acc = unit_roundoff(accumulation_dtype(dtype))
    return u_acc * summation_factor(n) + unit_roundoff(dtype)


def output_tolerance(dtype: str, n: int, mean, std, xhat, weight=None, bias=None):
    """Bound on |y - y_exact| for a normalised output, elementwise:

    SAFETY * [(u_acc k(n) + u_out)(1 + |mu|/s + |xhat|)|gamma| + u_out |beta|] + tiny

    A mean off by e (|mu| + s) moves xhat by e (1 + |mu|/s); a relative error e
    in var scales xhat by about e |xhat|; centering x - mu in the input dtype costs
    u_out |mu|/s more and the affine map u_out (|gamma xhat| + |beta|).  ``tiny``
    (the smallest normal number) is the absolute rounding of subnormal outputs.
    """
    gamma = 1.0 if weight is None else weight.abs()
    beta = 0.0 if bias is None else bias.abs()
    scaled = relative_error(dtype, n) * (1 + mean.abs() / std + xhat.abs()) * gamma
    return SAFETY * (scaled + unit_roundoff(dtype) * beta) + finfo(dtype).tiny


def shifted_input_rounding(dtype: str, shifted_input, std, xhat, weight=None):
    """Change of the exact output when x + b is rounded to ``dtype``:
    each |delta_i| <= u |x_i + b|, moving xhat_i by at most
    u max|x + b| (2 + |xhat_i|) / s.  Zero on a dyadic grid, where x + b is exact."""
    u = unit_roundoff(dtype)
    dims = (0,) + tuple(range(2, shifted_input.dim()))
    largest = shifted_input.abs().amax(dims, keepdim=True)
    gamma = 1.0 if weight is None else weight.abs()
    return SAFETY * u * largest * (2 + xhat.abs()) / std * gamma


def gradient_sum_tolerance(dtype: str, n: int, mean, std, xhat, g, weight=None):
    """Bound on |sum_i dl/dx_i| per channel, whose exact value is 0.

    dx_i = (gamma/s)(g_i - mean(g) - xhat_i mean(g xhat)); each term carries the
    relative error (u_acc k(n) + u_out)(1 + |mu|/s) of the statistics and of
    xhat recomputed in the input dtype, and summing n of them adds k(n) u_acc
    more, so the bound is SAFETY (u_acc k(n) + u_out)(1 + |mu|/s) M, with M the l1
    mass of the cancelling terms, (|gamma|/s) sum_i (|g_i| + |mean g| + |xhat_i mean(g xhat)|).
    """
    dims = (0,) + tuple(range(2, g.dim()))
    gamma = 1.0 if weight is None else weight.abs()
    g_mean = g.mean(dims, keepdim=True)
    gx_mean = (g * xhat).mean(dims, keepdim=True)
    mass = (g.abs() + g_mean.abs() + xhat.abs() * gx_mean.abs()).sum(dims, keepdim=True)
    mass = mass * gamma / std
    relative = relative_error(dtype, n) * (1 + mean.abs() / std)
    return (SAFETY * relative * mass).flatten() + finfo(dtype).tiny


def as_channel(values: torch.Tensor | None, rank: int):
    """A per-channel float64 vector shaped (1, C, 1, ...), or None."""
    if values is None:
        return None
    return values.detach().to("cpu", torch.float64).reshape((1, -1) + (1,) * (rank - 2))
