"""Bugs that live on one path only: long reductions, chunked merges, one dtype.

Real kernels switch algorithms by size and dtype (split reductions across threads or
blocks, chunked Welford statistics merged pairwise, half-precision accumulation), and a
bug can live on that path alone, out of reach of a search that draws small float32 inputs.
"""
from __future__ import annotations

import torch

from bn_invariants.zoo.base import ZooBatchNorm


def by_channel(x: torch.Tensor) -> torch.Tensor:
    """(C, n): each channel's values in one row (batch and spatial dimensions flattened)."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def channel_stat(values: torch.Tensor, rank: int) -> torch.Tensor:
    """A (C,) statistic as (1, C, 1, ...)."""
    return values.reshape((1, -1) + (1,) * (rank - 2))


class ChunkedVarianceMergeBatchNorm(ZooBatchNorm):
    """Statistics taken in chunks of 64 values and merged without the between-chunk term.

    Chan, Golub & LeVeque's merge of (n_a, μ_a, M2_a) and (n_b, μ_b, M2_b) adds
    δ² n_a n_b / n to M2_a + M2_b, δ = μ_b − μ_a; dropping it underestimates the variance by
    the spread of the chunk means (about 1/64 of it for i.i.d. values).  Exact for n <= 64."""

    BUG = "chunked variance merge drops the between-chunk term δ² n_a n_b / n"
    CAUSE = "long-reduction"
    SOURCE = ("Chan, Golub & LeVeque (1983), pairwise variance update; the merge step of "
              "chunked Welford statistics in split-reduction kernels")
    CAUGHT_BY = ("agrees-with-reference", "output-moments")
    CHUNK = 64

    def batch_statistics(self, x, dims):
        rows = by_channel(x)
        n = rows.shape[1]
        if n <= self.CHUNK:
            return super().batch_statistics(x, dims)
        mean = rows.mean(1)
        pieces = torch.split(rows, self.CHUNK, dim=1)
        within = sum(((p - p.mean(1, keepdim=True)) ** 2).sum(1) for p in pieces)
        return channel_stat(mean, x.dim()), channel_stat(within / n, x.dim())


class SplitReductionBatchNorm(ZooBatchNorm):
    """From 4096 values per channel, the mean is taken as the plain average of the means of
    chunks of 1000 values, the last one short: its values weigh more than the others."""

    BUG = "long reductions (n >= 4096) average chunk means without weighting the short last chunk"
    CAUSE = "long-reduction"
    SOURCE = ("split reductions across threads or blocks whose partial results are combined "
              "by count, e.g. pytorch/pytorch#86520 (a reduction wrong only past a size)")
    CAUGHT_BY = ("agrees-with-reference", "differential-agreement")
    LONG = 4096
    CHUNK = 1000

    def batch_statistics(self, x, dims):
        rows = by_channel(x)
        if rows.shape[1] < self.LONG:
            return super().batch_statistics(x, dims)
        means = torch.stack([p.mean(1) for p in torch.split(rows, self.CHUNK, dim=1)], 1)
        mean = channel_stat(means.mean(1), x.dim())
        var = ((x - mean) ** 2).mean(dims, keepdim=True)
        return mean, var


class BFloat16UnbiasedBatchNorm(ZooBatchNorm):
    """A bfloat16-only path that normalises with the unbiased variance (divides by n − 1)."""

    BUG = "bfloat16 input only: normalises with the unbiased variance"
    CAUSE = "unbiased-normalisation"
    SOURCE = "dtype-dispatched kernels that differ in one dtype (one template instance wrong)"
    CAUGHT_BY = ("agrees-with-reference", "output-moments")

    def batch_statistics(self, x, dims):
        mean, var = super().batch_statistics(x, dims)
        if self._input_dtype == torch.bfloat16:
            n = by_channel(x).shape[1]
            var = var * n / max(n - 1, 1)
        return mean, var

    def forward(self, x):
        self._input_dtype = x.dtype
        return super().forward(x)


class FirstValuesOnlyBatchNorm(ZooBatchNorm):
    """Batch statistics of the first 2**16 values of each channel only (batch, then
    spatial order): a channel longer than that is normalised with the statistics of a
    prefix.  The scaled-down form of a 16-bit count or index, and of a kernel that switches
    algorithms at a length and drops what is past it.  On i.i.d. values a prefix of 65,536
    has nearly the statistics of the whole (the output moves by about 0.002 sigma at 10^5
    values, inside the float32 output tolerance: only a float64 draw, or float32 backward
    sums, of the search's occasional 10^5-value shapes show it, in some seeded runs); in
    the positional regime of the long-path cases every run checks
    (invariants/runner.py, LONG_PATH_INVARIANTS) it moves the output by a large fraction
    of sigma."""

    BUG = "statistics see only the first 2^16 values of each channel (a 16-bit count or index)"
    SOURCE = ("NVIDIA/apex#411 (FusedLayerNorm wrong from a batch of 2^16 rows); torch/cunn#298 "
              "(batch norm failing past 65535 values); 32-bit index overflow in reductions")
    CAUGHT_BY = ("agrees-with-reference", "output-moments")
    CAUSE = "long-reduction"
    SEEN = 2**16

    def batch_statistics(self, x, dims):
        rows = by_channel(x)
        if rows.shape[1] <= self.SEEN:
            return super().batch_statistics(x, dims)
        seen = rows[:, :self.SEEN]
        mean = seen.mean(1)
        var = ((seen - mean[:, None]) ** 2).mean(1)
        return channel_stat(mean, x.dim()), channel_stat(var, x.dim())
