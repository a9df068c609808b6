"""Bugs of a hand-written backward pass (see manual.py for the correct one)."""
from __future__ import annotations

from bn_invariants.zoo.base import channel_view
from bn_invariants.zoo.manual import ManualBackwardBatchNorm, TrainingBatchNormFunction


class _RawInputWeightGradient(TrainingBatchNormFunction):
    @staticmethod
    def weight_gradient(g, x, xhat, dims):
        return (g * x).sum(dims)


class WrongWeightGradientBatchNorm(ManualBackwardBatchNorm):
    """Custom backward with dl/dγ = Σ g·x instead of Σ g·x̂: the Function's input where
    the normalised input belongs.  Forward, dl/dx and dl/dβ are right."""

    BUG = "custom backward returns dl/dγ = Σ g·x (its input) instead of Σ g·x̂"
    CAUSE = "backward"
    SOURCE = ("hand-derived batch-norm backward passes (the confusion of x and x̂ in the "
              "affine gradients asked about in pytorch/pytorch#2330 and apache/mxnet#12899)")
    CAUGHT_BY = ("parameter-gradients",)
    function = _RawInputWeightGradient


class _SavedStatistics(TrainingBatchNormFunction):
    @staticmethod
    def saved(x, weight, invstd, xhat):
        return xhat, invstd, weight

    @staticmethod
    def statistics(ctx):
        xhat, invstd, weight = ctx.saved_tensors
        gamma = 1.0 if weight is None else channel_view(weight, xhat.dim())
        return xhat, xhat, invstd, gamma


class SavedStatisticsBatchNorm(ManualBackwardBatchNorm):
    """Custom backward that reuses x̂ and 1/s saved by the forward pass.

    The first derivative is exact, but the saved tensors carry no history back to
    x, so differentiating the backward (double backward: gradient penalties, Hessian-
    vector products) silently drops their dependence on x."""

    BUG = "custom backward uses x̂ and 1/s saved in forward, so its own derivative is wrong"
    CAUSE = "backward"
    SOURCE = ("pytorch/pytorch#76185 (custom Functions silently wrong in double backward "
              "when intermediates are saved); torch's own #186256 for native_batch_norm")
    CAUGHT_BY = ("gradgradcheck",)
    function = _SavedStatistics

