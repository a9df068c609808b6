"""Bugs in the running statistics: the state eval mode will depend on."""
from __future__ import annotations

import torch

from bn_invariants.zoo.base import ZooBatchNorm


class BiasedRunningVarianceBatchNorm(ZooBatchNorm):
    """Folds the biased batch variance (÷n) into running_var, where torch folds the
    unbiased one (÷(n − 1))."""

    BUG = "running_var updated with the biased batch variance"
    CAUSE = "running-statistics"
    SOURCE = ("tinygrad/tinygrad#807 (fixed running_var to match PyTorch); "
              "ml-explore/mlx#3817; rwth-i6/returnn#1539")
    CAUGHT_BY = ("running-stats-update",)

    @torch.no_grad()
    def update_running(self, mean, var, n):
        self.blend(self.average_factor(), mean, var)


class FlippedMomentumBatchNorm(ZooBatchNorm):
    """Keras/TF momentum convention under torch's argument: running <- m·running +
    (1 − m)·batch, so torch's default 0.1 weighs the new batch 0.9 instead of 0.1."""

    BUG = "momentum convention flipped: running = m·running + (1 − m)·batch"
    CAUSE = "running-statistics"
    SOURCE = ("d2l-ai/d2l-en#2213; Jermmy/pytorch-quantization-demo#17; "
              "pytorch/pytorch#15298; the note in torch.nn.BatchNorm2d's documentation")
    CAUGHT_BY = ("running-stats-update",)

    @torch.no_grad()
    def update_running(self, mean, var, n):
        self.blend(1 - self.average_factor(), mean, var * n / (n - 1))


class CumulativeAverageOffByOneBatchNorm(ZooBatchNorm):
    """momentum=None: weighs the t-th batch by 1/(t + 1) instead of 1/t, counting the
    batch twice (the counter is already incremented), so the first batch only
    moves the running statistics half way."""

    BUG = "momentum=None cumulative average uses factor 1/(t + 1) after incrementing t"
    CAUSE = "running-statistics"
    SOURCE = ("the 1/(1 + n) factor of cudnnBatchNormalizationForwardTraining's comment "
              "(soumith/cudnn.torch#91) against torch's increment-then-1/t (pytorch/pytorch#5766)")
    CAUGHT_BY = ("running-stats-cumulative",)

    def average_factor(self):
        if self.momentum is None:
            return 1.0 / (float(self.num_batches_tracked) + 1.0)
        return self.momentum


class UncountedBatchesBatchNorm(ZooBatchNorm):
    """Counts batches in num_batches_tracked only when momentum=None needs the count.

    The running averages are right, but the buffer torch's state_dict contract
    (and momentum=None after a later switch) relies on stays at 0."""

    BUG = "num_batches_tracked incremented only when momentum is None"
    CAUSE = "running-statistics"
    SOURCE = ("pytorch/pytorch#30440 (the counter looks unused when momentum is set); "
              "mapillary/inplace_abn#130 and Oneflow-Inc/oneflow#7440 (reimplementations "
              "without the counter)")
    CAUGHT_BY = ("running-stats-update",)

    def count_batch(self):
        if self.momentum is None:
            super().count_batch()
