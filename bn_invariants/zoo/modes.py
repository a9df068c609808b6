"""Bugs of the train/eval split."""
from __future__ import annotations

import torch

from bn_invariants.zoo.base import ZooBatchNorm


class EvalUsesBatchStatsBatchNorm(ZooBatchNorm):
    """Normalises with the batch's statistics in eval mode too (the training flag is
    ignored), so an eval output depends on the rest of the batch."""

    BUG = "eval mode normalises with batch statistics instead of the running ones"
    CAUSE = "eval-mode"
    SOURCE = ("arahusky/Tensorflow-Segmentation#15 (is_training left True at inference); "
              "layumi/Person_reID_baseline_pytorch#218")
    CAUGHT_BY = ("eval-affine-map",)

    def uses_batch_statistics(self):
        return True


class EvalUpdatesRunningStatsBatchNorm(ZooBatchNorm):
    """Normalises with the running statistics in eval mode, but still folds the batch
    into them: every evaluation changes the model."""

    BUG = "eval mode still updates running_mean/running_var (and num_batches_tracked)"
    CAUSE = "eval-mode"
    SOURCE = ("mf1024/Batch-Renormalization-PyTorch#1; rwth-i6/returnn#1625; "
              "tensorflow/models#3287")
    CAUGHT_BY = ("eval-no-state-change",)

    def updates_running_statistics(self):
        return self.running_mean is not None


class EvalWithoutEpsBatchNorm(ZooBatchNorm):
    """Eval mode divides by √running_var, forgetting ε (training mode keeps it)."""

    BUG = "eval mode normalises by √running_var without eps"
    CAUSE = "eval-mode"
    SOURCE = ("chainer/chainer#2214 (eps missing in fixed_batch_normalization); "
              "Tencent/ncnn#303")
    CAUGHT_BY = ("eval-affine-map",)

    def normalise(self, x, mean, var, unit=1.0):
        if self.uses_batch_statistics():
            return super().normalise(x, mean, var, unit)
        return (x - mean) / torch.sqrt(var)
