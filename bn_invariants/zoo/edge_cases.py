"""Bugs at the edges of the contract: one value per channel, empty batches, repeatability."""
from __future__ import annotations

import torch

from bn_invariants.zoo.base import ZooBatchNorm


class SilentSingleValueBatchNorm(ZooBatchNorm):
    """Returns β for a batch with one value per channel (x̂ = 0/√ε) instead of raising,
    and folds the unbiased variance of that one value, 0·1/0 = NaN, into running_var:
    every later eval pass returns NaN."""

    BUG = "one value per channel in training: returns β and writes NaN into running_var"
    CAUSE = "degenerate-batch"
    SOURCE = ("frameworks that do not raise here (Keras/TF BatchNormalization on a batch of "
              "one) written with torch's unbiased running variance; torch's 'Expected more "
              "than 1 value per channel when training' error")
    CAUGHT_BY = ("one-value-per-channel",)

    def forward(self, x):
        single = x.dim() >= 2 and x.numel() == x.shape[1] and self.uses_batch_statistics()
        if not single:
            return super().forward(x)
        computed = x.to(self.compute_dtype(x.dtype))
        if self.updates_running_statistics():
            self.count_batch()
            zero = torch.zeros(x.shape[1], dtype=computed.dtype, device=x.device)
            self.blend(self.average_factor(), computed.detach().flatten(), zero * 1 / zero)
        return self.scale_shift(torch.zeros_like(computed)).to(x.dtype)


class EmptyBatchPoisonsStatsBatchNorm(ZooBatchNorm):
    """Folds the statistics of an empty batch (NaN: a mean of no values) into the running
    statistics, so one image without detections poisons every later eval pass."""

    BUG = "an empty batch in training updates running_mean/var with NaN"
    CAUSE = "degenerate-batch"
    SOURCE = ("zero-size batches in detection and segmentation heads (an image with no "
              "proposals); torch special-cases empty input in batch_norm")
    CAUGHT_BY = ("empty-batch",)

    def forward(self, x):
        y = super().forward(x)
        if self.updates_running_statistics() and x.numel() == 0:
            values = x.detach().transpose(0, 1).reshape(x.shape[1], -1).float()
            nan = values.mean(1)  # the mean (and variance) of no values
            self.blend(self.average_factor(), nan, nan)
        return y


class NondeterministicBatchNorm(ZooBatchNorm):
    """Sums each channel in a different order on every call, as kernels that accumulate
    with atomic adds do: the same input, given twice, gives outputs differing in the
    last bits."""

    BUG = "statistics summed in a different (random) order on every call"
    CAUSE = "nondeterminism"
    SOURCE = ("PyTorch's reproducibility notes on nondeterministic CUDA kernels (atomicAdd); "
              "torch.use_deterministic_algorithms")
    CAUGHT_BY = ("deterministic-forward",)

    calls = 0

    def batch_statistics(self, x, dims):
        # a different order on every call of this module, yet reproducible from a fresh
        # one, so Hypothesis replays a failure exactly (no global RNG involved)
        self.calls += 1
        flat = x.movedim(1, 0).reshape(x.shape[1], -1)
        order = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(self.calls))
        order = order.to(x.device)
        shuffled = flat[:, order].reshape((x.shape[1],) + tuple(x.shape[d] for d in dims))
        return super().batch_statistics(shuffled.movedim(0, 1), dims)
