"""The input gradient of a training-mode batch norm: how to take it, its float64 closed
form, and elementwise bounds on its rounding error.  Shared by the backward family and
the scale-invariant-weights family; registers nothing.

For l = sum(g * BN(x)), with s = sqrt(var + eps), x̂ = (x - mu)/s, ḡ = mean(g),
c̄ = mean(g x̂) per channel (Ioffe & Szegedy 2015, section 3):

    dl/dx_i = (gamma/s) (g_i - ḡ - x̂_i c̄).
"""
from __future__ import annotations

import torch

from bn_invariants.invariants.assertions import InvariantViolation
from bn_invariants.invariants.harness import build, context
from bn_invariants.invariants.reference import reduce_dims
from bn_invariants.invariants.tolerances import SAFETY, relative_error
from bn_invariants.strategies import finfo


def input_gradient(subject, problem, module=None, values=None):
    """(dl/dx, module) for l = sum(g * BN(x)), x the problem's input (or ``values``)
    in its dtype, device and layout, g the problem's cotangent rounded to the dtype."""
    module = module or build(subject, problem)
    x = problem.input(values).requires_grad_(True)
    y = module(x)
    if not y.requires_grad:
        raise InvariantViolation(f"BN(x).requires_grad=False, but should be True: the "
                                 f"output must depend on x [{context(subject, problem)}]")
    y.backward(problem.cotangent().to(y.dtype).to(problem.device))
    if x.grad is None:
        raise InvariantViolation(f"x.grad=None after y.backward(g), but should be a tensor "
                                 f"[{context(subject, problem)}]")
    return x.grad, module


def rounded_cotangent(problem) -> torch.Tensor:
    """g exactly as the subject receives it (rounded to the dtype), in float64."""
    return problem.cotangent().to(problem.torch_dtype).double()


def _means(stats, g):
    dims = reduce_dims(g.dim())
    return (g.mean(dims, keepdim=True), (g * stats.xhat).mean(dims, keepdim=True),
            g.abs().mean(dims, keepdim=True), (g * stats.xhat).abs().mean(dims, keepdim=True))


def closed_form(stats, g, gamma=None) -> torch.Tensor:
    """dl/dx = (gamma/s)(g - ḡ - x̂ c̄) in float64, from exact statistics ``stats``."""
    g_mean, gx_mean, _, _ = _means(stats, g)
    scale = (1.0 if gamma is None else gamma) / stats.std
    return scale * (g - g_mean - stats.xhat * gx_mean)


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
    g_mean, gx_mean, g_abs, gx_abs = _means(stats, g)
    xa = stats.xhat.abs()
    mass = (g.abs() + g_mean.abs() + g_abs + (1 + 2 * xa) * gx_mean.abs()
            + xa * (g_abs + gx_abs))
    rho = relative_error(dtype, stats.n) * (1 + stats.mean.abs() / stats.std)
    scale = (1.0 if gamma is None else gamma.abs()) / stats.std
    return SAFETY * rho * scale * mass + finfo(dtype).tiny


def radial_value(stats, g, gamma, eps: float) -> torch.Tensor:
    """sum_i x_i dl/dx_i = s sum_i x̂_i dl/dx_i = gamma (eps/(var + eps)) sum_i g_i x̂_i
    per channel, (C,) float64: zero when eps = 0 (the gradient is orthogonal to x)."""
    dims = reduce_dims(g.dim())
    gamma = 1.0 if gamma is None else gamma
    ratio = eps / (stats.var + eps) if eps > 0 else torch.zeros_like(stats.var)
    return (gamma * ratio * (g * stats.xhat).sum(dims, keepdim=True)).flatten()


def reference_xhat_error(stats) -> torch.Tensor:
    """Bound on the float64 x̂'s own error, elementwise: its mean and s are statistics
    accumulated in float64, rho_64 (1 + |mu|/s + |x̂|).  Negligible beside a half or
    single subject's error, not beside a float64 one (e.g. a constant channel, whose
    exact x̂ is 0 but whose float64 mean may be one rounding off)."""
    rho = relative_error("float64", stats.n)
    return SAFETY * rho * (1 + stats.mean.abs() / stats.std + stats.xhat.abs())


def radial_reference_error(stats, g, gamma, eps: float) -> torch.Tensor:
    """Bound on radial_value's error from the float64 x̂'s own error, (C,)."""
    dims = reduce_dims(g.dim())
    gamma = 1.0 if gamma is None else gamma.abs()
    ratio = eps / (stats.var + eps) if eps > 0 else torch.zeros_like(stats.var)
    return (gamma * ratio * (g.abs() * reference_xhat_error(stats)).sum(dims, keepdim=True)).flatten()


def per_channel_sum(values: torch.Tensor) -> torch.Tensor:
    """sum over every dimension but the channel one, (C,) float64."""
    return values.double().sum(reduce_dims(values.dim())).flatten()
