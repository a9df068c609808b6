"""Batch norm with a hand-written backward pass (a torch.autograd.Function), as users
write one to save memory or fuse kernels.

``ManualBackwardBatchNorm`` is correct, and twice differentiable: its backward
recomputes x̂ from the saved input with differentiable operations, so autograd
can differentiate the backward itself.  The mutants of custom_backward.py change
one line of it.
"""
from __future__ import annotations

import torch

from bn_invariants.zoo.base import ZooBatchNorm, channel_view


def centred_scaled(x: torch.Tensor, dims: tuple, eps: float):
    """(mean, var, 1/s, x̂) of ``x`` with differentiable operations."""
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    invstd = torch.rsqrt(var + eps)
    return mean, var, invstd, (x - mean) * invstd


def input_gradient(g, xhat, invstd, gamma, dims):
    """dl/dx = (γ/s)(g - mean(g) - x̂ mean(g x̂)), the closed form."""
    g_mean = g.mean(dims, keepdim=True)
    gx_mean = (g * xhat).mean(dims, keepdim=True)
    return gamma * invstd * (g - g_mean - xhat * gx_mean)


class TrainingBatchNormFunction(torch.autograd.Function):
    """y = γ x̂ + β with batch statistics; returns (y, mean, var), the statistics
    non-differentiable (they only feed the running averages).  ``eps`` may be a
    per-channel tensor (eps in the units x is measured in)."""

    @classmethod
    def forward(cls, ctx, x, weight, bias, eps, dims):
        mean, var, invstd, xhat = centred_scaled(x, dims, eps)
        y = xhat
        if weight is not None:
            y = xhat * channel_view(weight, x.dim()) + channel_view(bias, x.dim())
        ctx.eps, ctx.dims = eps, dims
        ctx.save_for_backward(*cls.saved(x, weight, invstd, xhat))
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def saved(x, weight, invstd, xhat):
        """What the forward keeps for the backward: the input, not its intermediates."""
        return x, weight

    @staticmethod
    def statistics(ctx):
        """(x̂, 1/s, γ as a channel view or 1) for the backward, recomputed from x."""
        x, weight = ctx.saved_tensors
        _, _, invstd, xhat = centred_scaled(x, ctx.dims, ctx.eps)
        gamma = 1.0 if weight is None else channel_view(weight, x.dim())
        return x, xhat, invstd, gamma

    @staticmethod
    def weight_gradient(g, x, xhat, dims):
        """dl/dγ = Σ g x̂."""
        return (g * xhat).sum(dims)

    @classmethod
    def backward(cls, ctx, g, _mean_grad, _var_grad):
        x, xhat, invstd, gamma = cls.statistics(ctx)
        dims = ctx.dims
        dx = input_gradient(g, xhat, invstd, gamma, dims) if ctx.needs_input_grad[0] else None
        dw = cls.weight_gradient(g, x, xhat, dims) if ctx.needs_input_grad[1] else None
        db = g.sum(dims) if ctx.needs_input_grad[2] else None
        return dx, dw, db, None, None


class ManualBackwardBatchNorm(ZooBatchNorm):
    """The zoo's second control: ZooBatchNorm with the training pass in a custom
    autograd.Function whose backward is the closed form."""

    BUG = "none: the custom-backward control"
    SOURCE = "torch.autograd.Function documentation (Extending torch.autograd)"
    function = TrainingBatchNormFunction

    def train_normalise(self, x, dims):
        weight = None if self.weight is None else self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        unit = self.unit_of(x, dims)
        y, mean, var = self.function.apply(self.to_units(x, unit), weight, bias,
                                           self.eps_in(unit), dims)
        return y, mean * unit, var * unit * unit
