"""Distributed mutants: synchronised batch norms with one bug each.

Each subclasses the reference (invariants.distributed.reference.AllReduceBatchNorm)
and overrides one collective step.  They run inside a process group, so the suite
checks them with the distributed family
(``pytest --bn-dist-impl=bn_invariants.zoo.distributed:Name``), never with the
single-process one.  Like the single-process zoo, each carries BUG,
SOURCE and CAUGHT_BY (asserted by tests/test_distributed_zoo.py).
"""
from __future__ import annotations

import torch

from bn_invariants.invariants.distributed.reference import AllReduceBatchNorm
from bn_invariants.invariants.reference import channel_view, reduce_dims


class UnweightedRankMeanBatchNorm(AllReduceBatchNorm):
    """The global mean is the plain average of the ranks' means: right only when every
    rank holds as many samples."""

    BUG = "per-rank means averaged without weighting by slice size"
    SOURCE = ("the reason torch.nn.SyncBatchNorm gathers per-rank counts (torch/nn/modules/"
              "_functions.py: 'count could be different across ranks, simple all reduce op "
              "can not give correct results')")
    CAUGHT_BY = ("distributed-forward", "distributed-running-stats")

    def global_mean(self, xs, dims):
        count, _ = super().global_mean(xs, dims)
        holding = float(xs.numel() > 0)  # ranks with data: an empty slice is skipped
        means = torch.cat([xs.mean(dims) if xs.numel() else xs.sum(dims),
                           torch.full((1,), holding, dtype=xs.dtype, device=xs.device)])
        summed = self.all_reduce(means)
        return count, summed[:-1] / summed[-1]


class NoBetweenRankVarianceBatchNorm(AllReduceBatchNorm):
    """Each rank centres its squares on its own mean: the spread between the ranks'
    means, sum_r n_r (mu_r - mu)^2, is lost."""

    BUG = "variance merged from per-rank centred moments without the between-rank term"
    SOURCE = ("Chan, Golub & LeVeque (1979), the pairwise merge of centred moments; the "
              "omitted term is the classic mistake of merging per-shard variances")
    CAUGHT_BY = ("distributed-forward", "distributed-running-stats")

    def global_variance(self, xs, dims, count, mean):
        local_mean = xs.mean(dims, keepdim=True) if xs.numel() else xs.sum(dims, keepdim=True)
        return self.all_reduce(((xs - local_mean) ** 2).sum(dims)) / count


class LocalCountRunningVarianceBatchNorm(AllReduceBatchNorm):
    """running_var is unbiased with the rank's own count n_r instead of the global n."""

    BUG = "running variance corrected with the local count n_r/(n_r - 1) instead of n/(n - 1)"
    SOURCE = ("torch.nn.SyncBatchNorm hands the gathered global counts to "
              "batch_norm_gather_stats_with_counts for the running-variance update; a port "
              "that reuses the single-process update uses the local count")
    CAUGHT_BY = ("distributed-running-stats",)

    def bessel_count(self, count, local_count):
        return local_count


class NoAllReduceBackwardBatchNorm(AllReduceBatchNorm):
    """Forward is synchronised, backward is not: the means of g and g x̂ are the rank's own."""

    BUG = "backward uses each rank's own means of g and g·x̂ (no all-reduce)"
    SOURCE = ("the paper's naive rule in distributed form (Ioffe & Szegedy 2015, section 2); "
              "torch's SyncBatchNorm.backward all-reduces sum_dy and sum_dy_xmu to avoid it")
    CAUGHT_BY = ("distributed-input-gradient", "distributed-no-bias-drift")

    def input_gradient(self, grad, xhat, inv_std, count):
        dims = reduce_dims(grad.dim())
        local = max(grad.numel() // max(grad.shape[1], 1), 1)
        g_mean = channel_view(grad.sum(dims) / local, grad.dim())
        gx_mean = channel_view((grad * xhat).sum(dims) / local, grad.dim())
        return (grad - g_mean - xhat * gx_mean) * inv_std


class DeviceCountWorldSizeBatchNorm(AllReduceBatchNorm):
    """The world size is read from the local device count, so a one-device-per-process
    run takes the world-size-1 special case and never synchronises."""

    BUG = "world size taken from the local device count, so world size 1 skips synchronisation"
    SOURCE = ("training scripts that convert to SyncBatchNorm only when "
              "torch.cuda.device_count() > 1, which leaves one-GPU-per-node runs unsynchronised")
    CAUGHT_BY = ("distributed-forward",)

    def world_size(self) -> int:
        return max(torch.cuda.device_count() if torch.cuda.is_available() else 0, 1)


class EvalSynchronisesBatchNorm(AllReduceBatchNorm):
    """Eval mode normalises with the global batch's statistics too, ignoring the running
    statistics (and needing every rank to call it the same number of times)."""

    BUG = "eval mode synchronises and normalises with global batch statistics"
    SOURCE = ("SyncBatchNorm ports that synchronise whatever the mode; torch.nn.SyncBatchNorm "
              "synchronises only in training mode (need_sync), so ranks may evaluate "
              "unevenly")
    CAUGHT_BY = ("distributed-eval-local",)

    def synchronises(self) -> bool:
        return True


DIST_MUTANTS = (
    UnweightedRankMeanBatchNorm,
    NoBetweenRankVarianceBatchNorm,
    LocalCountRunningVarianceBatchNorm,
    NoAllReduceBackwardBatchNorm,
    DeviceCountWorldSizeBatchNorm,
    EvalSynchronisesBatchNorm,
)
"""One bug each; the distributed family must catch every one."""
