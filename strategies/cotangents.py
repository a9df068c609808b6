"""Named cotangent regimes: the upstream gradient g of l = sum(g * BN(x)), drawn on purpose.

A gradient invariant can only see a wrong gradient through g.  A g independent of x̂
(``normal``) gives the naive rule's error, (γ/s)Σg or (γ/s)x̂ᵢ mean(g x̂), a size of
about √n, while rounding bounds grow like n: at long reductions the bug hides in the
noise.  ``informative`` draws g = a_c + b_c x̂ + noise per channel, so that Σg = n a_c
and Σ g x̂ = n b_c: every term a wrong backward can drop grows like n.

Each regime maps (generator, x̂ (float64, the input's shape)) to g (float64); x̂ is the
input's own standardised values, so a regime can correlate with it.
"""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from bn_invariants.strategies.names import names_from


def _signed(gen, c: int, low: float, high: float) -> torch.Tensor:
    """(1, C) magnitudes in [low, high] with random signs."""
    size = low + (high - low) * torch.rand(c, generator=gen, dtype=torch.float64)
    sign = torch.where(torch.rand(c, generator=gen) < 0.5, -1.0, 1.0).double()
    return sign * size


def _per_channel(values: torch.Tensor, rank: int) -> torch.Tensor:
    return values.reshape((1, -1) + (1,) * (rank - 2))


def informative(gen, xhat):
    """g = a_c + b_c x̂ + z, a_c and b_c of size 0.5 to 2 with either sign, z standard
    normal: the mean and the x̂-component of g both carry a signal that grows like n."""
    c, rank = xhat.shape[1], xhat.dim()
    a = _per_channel(_signed(gen, c, 0.5, 2.0), rank)
    b = _per_channel(_signed(gen, c, 0.5, 2.0), rank)
    return a + b * xhat + torch.randn(xhat.shape, generator=gen, dtype=torch.float64)


def normal(gen, xhat):
    """g standard normal, independent of x̂ (the suite's cotangent before informative ones)."""
    return torch.randn(xhat.shape, generator=gen, dtype=torch.float64)


def ones(gen, xhat):
    """g = 1: the gradient of the sum of the outputs, whose exact dl/dx is 0."""
    return torch.ones_like(xhat)


def xhat_only(gen, xhat):
    """g = x̂: the gradient of half the sum of squares, whose exact dl/dx is O(eps)."""
    return xhat.clone()


def sparse(gen, xhat):
    """g zero except about one value in 16, each standard normal times 4."""
    keep = torch.rand(xhat.shape, generator=gen, dtype=torch.float64) < 1 / 16
    return torch.where(keep, 4 * torch.randn(xhat.shape, generator=gen, dtype=torch.float64), 0.0)


def heavy_tailed(gen, xhat):
    """g = z / sqrt(u), z standard normal, u uniform in (1/256, 1): tails up to 16x."""
    u = 1 / 256 + (1 - 1 / 256) * torch.rand(xhat.shape, generator=gen, dtype=torch.float64)
    return torch.randn(xhat.shape, generator=gen, dtype=torch.float64) / u.sqrt()


COTANGENTS = {"informative": informative, "normal": normal, "ones": ones,
              "xhat": xhat_only, "sparse": sparse, "heavy_tailed": heavy_tailed}
"""Name -> regime; ``informative`` first, what draws shrink towards."""


def cotangents(*, allowed=tuple(COTANGENTS)) -> st.SearchStrategy[str]:
    """The name of a cotangent regime, shrinking towards ``informative``.

    >>> cotangents().example() in COTANGENTS
    True
    """
    return names_from(tuple(COTANGENTS), allowed)


def standardised(values: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - mean)/sqrt(var + eps) per channel, float64, each channel first divided by a power
    of two near its largest magnitude (so squares of huge values do not overflow).  Only
    shapes the cotangent: the suite's exact statistics are the oracle's."""
    dims = (0,) + tuple(range(2, values.dim()))
    if values.numel() == 0:
        return values.clone()
    peak = values.abs().amax(dims, keepdim=True).clamp_min(1.0)
    c = torch.exp2(torch.floor(torch.log2(peak)))
    scaled = values / c
    mean = scaled.mean(dims, keepdim=True)
    var = ((scaled - mean) ** 2).mean(dims, keepdim=True)
    return (scaled - mean) / (var + eps / c**2).sqrt()
