"""Scale-invariant weights (Ioffe & Szegedy 2015, section 3.3): a linear map W before the
batch norm, x = W u, and the gradient of l = sum(g * BN(W u)) with respect to W."""
from __future__ import annotations

import torch

from bn_invariants.strategies import streams
from bn_invariants.invariants.assertions import channels_past_the_range
from bn_invariants.invariants.bounds import SAFETY, elementwise_tolerance, relative_error
from bn_invariants.invariants.reference import closed_form, statistics
from bn_invariants.invariants.step import backward, context, rounded_cotangent
from bn_invariants.strategies import REGIMES, apply_layout, finfo

POSITIVE_VARIANCE = tuple(r for r in REGIMES if r not in ("constant_channels", "tiny_variance"))
"""Regimes where every channel of W u has a variance clearly above zero in every dtype,
as eps = 0 (or eps tiny relative to it) needs."""


def mixing_weight(problem, scale: float = 1.0) -> torch.Tensor:
    """W (C, C), float64, entries ±(0.5..1.5)/sqrt(C) (no subnormals, rows of norm about 1)
    rounded to the dtype, times ``scale`` (a power of two keeps it exact)."""
    gen = problem.generator(streams.MIXING_WEIGHT)
    c = problem.num_features
    sign = torch.where(torch.rand(c, c, generator=gen) < 0.5, -1.0, 1.0).double()
    size = 0.5 + torch.rand(c, c, generator=gen, dtype=torch.float64)
    weight = (sign * size / c ** 0.5).to(problem.torch_dtype).double()
    return weight * scale


def mix(weight: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """x = W u over the channel dimension: x[n, c, ...] = sum_k W[c, k] u[n, k, ...]."""
    return torch.einsum("ck,nk...->nc...", weight, u)


def weight_gradient(subject, problem, weight64, *, module):
    """(dl/dW, x) as float64 for l = sum(g * BN(W u)); x is the input the subject saw."""
    weight = weight64.detach().clone().to(problem.torch_dtype).to(problem.device).requires_grad_(True)
    x = apply_layout(mix(weight, problem.input()), problem.layout)
    grad = backward(module(x), problem.cotangent(), weight, context(subject, problem),
                    output="BN(W u)", wrt="W")
    return grad.to("cpu", torch.float64), x.detach().to("cpu", torch.float64)


def gradient_terms(problem, x, eps, gamma):
    """(stats of x, g, closed-form dl/dx, its elementwise tolerance), all float64."""
    stats = statistics(x, eps)
    g = rounded_cotangent(problem)
    return stats, g, closed_form(stats, g, gamma), elementwise_tolerance(problem.dtype, stats, g, gamma)


def weight_gradient_tolerance(problem, dx, dx_tol):
    """Elementwise bound on |dl/dW - exact| at the x the subject saw, (C, K): each dl/dx_i
    off by its tolerance, and the backward's reduction over n, SAFETY (u_acc k(n) + u_out),
    weighted by |u_ki|."""
    rel = relative_error(problem.dtype, problem.reduction_length)
    return torch.einsum("nc...,nk...->ck", dx_tol + SAFETY * rel * dx.abs(), problem.values.abs())


def rows_past_the_range(problem, grad, dx, dx_tol, ctx: str) -> torch.Tensor:
    """The channels c whose weight gradient the dtype may not hold, (C,) bool: some exact
    dl/dW_ck = sum_i dl/dx_ci u_ki (at the x the subject saw) plus its tolerance passes the
    largest finite value.  There ±inf is that gradient rounded, and <W_c, dl/dW_c> or a step
    W - eta dl/dW is not defined, so these rows are checked entry by entry instead
    (``channels_past_the_range``).  Reached in float16 over long reductions: dl/dW sums n
    products, and grows like n where g correlates with u (the informative cotangent draws
    g from u's own x̂, not W u's)."""
    exact = torch.einsum("nc...,nk...->ck", dx, problem.values)
    tol = weight_gradient_tolerance(problem, dx, dx_tol)
    return channels_past_the_range("dl/dW", grad, exact, tol, finfo(problem.dtype).max, ctx,
                                   dim=0)


def backward_products_in_range(problem, dx, dx_tol) -> bool:
    """Whether every product dl/dx_ci u_ki of the mixing's own backward (dl/dW = dx^T u,
    torch's matmul, not the batch norm under test) stays a factor SAFETY inside the dtype's
    range for any dl/dx the subject may compute, within ``dx_tol`` of the exact ``dx``:
    max(|dx| + dx_tol) max|u| bounds them all.  Half types form the products in the dtype
    on the CPU: measured at (2, 1) float16, u = [-904.5, -904.5], dx = [-136.6, 136.6],
    dl/dW reads inf - inf = NaN where the exact value is 0, so such a case cannot be
    checked.  The exact dx alone is not enough: with g = 1 it is 0, while torch's float16
    dl/dx at |mean|/std ~ 300 is rounding noise large enough to overflow the products.
    dl/dx itself must stay in range too: where u is tiny (tiny_variance, eps = 1e-7) the
    products are small, but a float16 dl/dx_i past 65504 is ±inf and dl/dW reads NaN."""
    top = finfo(problem.dtype).max / SAFETY
    reach = float((dx.abs() + dx_tol).max())
    return reach <= top and reach * float(problem.values.abs().max()) <= top
