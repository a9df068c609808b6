"""torch's own kernel behind another class: a library subclass, SyncBatchNorm, a lazy factory.

Their results are torch's, bit for bit, so every failure they show is torch's own
deviation: the suite reports it as inherited, never as the user's bug.
"""
from __future__ import annotations

from torch import nn


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d followed by an optional activation, the way vision libraries write it
    (timm's ``BatchNormAct2d``, mmcv's norm-act layers).  Without ``act_layer`` it is
    BatchNorm2d exactly."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, apply_act=True, act_layer=None,
                 device=None, dtype=None):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, device=device, dtype=dtype)
        self.act = act_layer() if apply_act and act_layer is not None else nn.Identity()

    def forward(self, x):
        x = super().forward(x)
        return self.act(x)


def lazy_batch_norm_2d(num_features, **kwargs):
    """A factory returning ``torch.nn.LazyBatchNorm2d``: the channel count is inferred
    from the first input, so ``num_features`` is not passed on (as configs that build
    layers lazily do)."""
    return nn.LazyBatchNorm2d(**kwargs)
