"""Batch norms the way courses and tutorials write them.

``CourseBatchNorm`` follows the from-scratch chapter of a deep-learning course (d2l's
``batch_norm``): the running variance is the biased batch variance, and momentum=None
(the cumulative average) is not offered.  ``KerasStyleBatchNorm`` uses Keras's
momentum convention.  ``ViewBatchNorm`` flattens with ``x.view``.
"""
from __future__ import annotations

import torch
from torch import nn


def _stats_dtype(x):
    # statistics in float32 for half inputs (the course's mixed-precision note)
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class CourseBatchNorm(nn.Module):
    """Batch norm over (N, C, *) input; running_var is the biased batch variance."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        if momentum is None:
            raise NotImplementedError("momentum=None (cumulative average) is not supported")
        kw = {"device": device, "dtype": dtype}
        self.eps, self.momentum, self.affine = eps, momentum, affine
        self.weight = nn.Parameter(torch.ones(num_features, **kw)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features, **kw)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
        else:
            self.running_mean = self.running_var = None

    def forward(self, X):
        shape = (1, -1) + (1,) * (X.dim() - 2)
        dims = (0,) + tuple(range(2, X.dim()))
        Xc = X.to(_stats_dtype(X))
        if self.training or self.running_mean is None:
            if X.numel() // X.shape[1] < 2:
                raise ValueError("need more than one value per channel in training")
            mean = Xc.mean(dim=dims, keepdim=True)
            var = ((Xc - mean) ** 2).mean(dim=dims, keepdim=True)
            if self.training and self.running_mean is not None:
                with torch.no_grad():
                    self.update_moving(mean.reshape(-1), var.reshape(-1))
        else:
            mean = self.running_mean.to(Xc.dtype).reshape(shape)
            var = self.running_var.to(Xc.dtype).reshape(shape)
        X_hat = (Xc - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            X_hat = self.weight.reshape(shape) * X_hat + self.bias.reshape(shape)
        return X_hat.to(X.dtype)

    def update_moving(self, mean, var):
        """moving = (1 − momentum)·moving + momentum·batch (torch's convention)."""
        m = self.momentum
        self.running_mean.mul_(1 - m).add_(m * mean)
        self.running_var.mul_(1 - m).add_(m * var)


class KerasStyleBatchNorm(CourseBatchNorm):
    """Keras's convention: moving = momentum·moving + (1 − momentum)·batch, with the
    biased batch variance (tf.keras.layers.BatchNormalization)."""

    def update_moving(self, mean, var):
        m = self.momentum
        self.running_mean.mul_(m).add_((1 - m) * mean)
        self.running_var.mul_(m).add_((1 - m) * var)


class ViewBatchNorm(CourseBatchNorm):
    """Flattens the spatial dimensions with ``x.view(N, C, -1)``: raises on input whose
    spatial dimensions are permuted (a transposed image), where torch works."""

    def forward(self, X):
        flat = X.view(X.shape[0], X.shape[1], -1)
        return super().forward(flat).view(X.shape)
