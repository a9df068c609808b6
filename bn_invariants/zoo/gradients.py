"""Gradient bugs of batch norms written with plain autograd operations."""
from __future__ import annotations

from bn_invariants.zoo.base import ZooBatchNorm


class DetachedVarianceBatchNorm(ZooBatchNorm):
    """Batch norm whose backward treats Var[x] as a constant (``var.detach()``).

    The forward pass is exact; dl/dx loses the -x̂ mean(g x̂) term, so the input
    gradient has a component along x̂ that moves the (normalised) output nowhere.
    """

    BUG = "the batch variance is detached from the graph (var.detach())"
    CAUSE = "detached-variance"
    SOURCE = ("Ioffe & Szegedy (2015), section 2 (the normalisation must be inside the "
              "gradient); the saved-statistics pitfall of pytorch/pytorch#186256")
    CAUGHT_BY = ("input-gradient-closed-form", "input-gradient-sums-to-zero")

    def batch_statistics(self, x, dims):
        mean, var = super().batch_statistics(x, dims)
        return mean, var.detach()
