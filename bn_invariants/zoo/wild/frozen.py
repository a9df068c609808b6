"""An eval-only ("frozen") batch norm: statistics and affine parameters are buffers.

Written like torchvision's ``FrozenBatchNorm2d`` (torchvision/ops/misc.py), used by
detection backbones: training mode behaves as eval, nothing is learned.
"""
from __future__ import annotations

import torch
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d where the batch statistics and the affine parameters are fixed."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (got {x.dim()}D input)")
        # move reshapes to the beginning to make it fuser-friendly
        w = self.weight.reshape(1, -1, 1, 1)
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + self.eps).rsqrt()
        bias = b - rm * scale
        return x * scale + bias


def frozen_batch_norm(num_features, eps=1e-5, momentum=0.1, affine=True,
                      track_running_stats=True, device=None, dtype=None):
    """BatchNorm2d's constructor for FrozenBatchNorm2d: what a user writes to check it.
    A frozen batch norm has no batch statistics to track and always has γ, β."""
    if not affine or not track_running_stats:
        raise ValueError("FrozenBatchNorm2d always has weight, bias and running statistics")
    return FrozenBatchNorm2d(num_features, eps=eps).to(device=device, dtype=dtype)
