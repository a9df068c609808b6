"""Scale-invariant weights (Ioffe & Szegedy 2015, section 3.3): a linear map W before the
batch norm, x = W u, and the gradient of l = sum(g * BN(W u)) with respect to W."""
from __future__ import annotations

import torch

from bn_invariants.strategies import streams
from bn_invariants.invariants.bounds import elementwise_tolerance
from bn_invariants.invariants.reference import closed_form, statistics
from bn_invariants.invariants.step import backward, context, rounded_cotangent
from bn_invariants.strategies import REGIMES, apply_layout

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
