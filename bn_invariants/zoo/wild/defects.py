"""Real defects seen in hand-written batch norms, one per class; each is torch's kernel
(or a plain formula) with the one defect, so the suite's verdict names it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Functional(nn.BatchNorm2d):
    """BatchNorm2d's state and F.batch_norm, for input of rank 2 to 5."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")


class UnsqueezedRank2BatchNorm(_Functional):
    """Treats (N, C) as (N, C, 1), as BatchNorm1d does, and forgets to squeeze back:
    rank-2 input gets a (N, C, 1) output.  Ranks 3 to 5 are right."""

    def forward(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        return super().forward(x)


class GraphKeepingBatchNorm(_Functional):
    """Updates the running statistics out of place, outside ``torch.no_grad()``: with an
    input that requires grad, running_mean keeps the autograd graph of the batch."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        dims = (0,) + tuple(range(2, x.dim()))
        n = x.numel() // x.shape[1]
        if n > 1 and self.momentum is not None and self.running_mean is not None:
            mean = x.mean(dims)
            var = x.var(dims, correction=1)
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mean.to(self.running_mean.dtype)
            self.running_var = (1 - m) * self.running_var + m * var.to(self.running_var.dtype)
            self.num_batches_tracked += 1
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return super().forward(x)


class AttributeStatsBatchNorm(nn.Module):
    """Running statistics kept as plain tensor attributes (not buffers), and refreshed
    in eval mode as well: ``state_dict`` never shows them change."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        if momentum is None or not track_running_stats:
            raise NotImplementedError("only an exponential average of tracked statistics")
        self.eps, self.momentum = eps, momentum
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(num_features, **kw)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features, **kw)) if affine else None
        self.running_mean = torch.zeros(num_features, **kw)
        self.running_var = torch.ones(num_features, **kw)

    def forward(self, x):
        dims = (0,) + tuple(range(2, x.dim()))
        if x.numel() // x.shape[1] > 1:
            with torch.no_grad():
                m = self.momentum
                batch_var = x.to(self.running_var.dtype).var(dims, correction=1)
                self.running_mean = (1 - m) * self.running_mean + m * x.mean(dims).to(
                    self.running_mean.dtype)
                self.running_var = (1 - m) * self.running_var + m * batch_var
        return F.batch_norm(x, self.running_mean.clone(), self.running_var.clone(), self.weight,
                            self.bias, self.training, 0.0, self.eps)


class HardEpsBatchNorm(_Functional):
    """Keeps the constructor's eps but normalises with a hard-coded 1e-5."""

    def forward(self, x):
        eps, self.eps = self.eps, 1e-5
        try:
            return super().forward(x)
        finally:
            self.eps = eps


class DtypeDroppingBatchNorm(_Functional):
    """Accepts ``device``/``dtype`` and does not pass them on: every module is float32."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)


class PackedAffineBatchNorm(nn.Module):
    """γ and β packed in one parameter; ``weight`` and ``bias`` are read-only properties
    (views of it), as fused or quantisation-friendly layers expose them."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        if momentum is None:
            raise NotImplementedError("momentum=None is not supported")
        kw = {"device": device, "dtype": dtype}
        self.eps, self.momentum, self.affine = eps, momentum, affine
        self.packed_affine = nn.Parameter(torch.stack([torch.ones(num_features, **kw),
                                                       torch.zeros(num_features, **kw)]),
                                          requires_grad=affine)
        self.track_running_stats = track_running_stats
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
        else:
            self.running_mean = self.running_var = None

    @property
    def weight(self):
        return self.packed_affine[0] if self.affine else None

    @property
    def bias(self):
        return self.packed_affine[1] if self.affine else None

    def forward(self, x):
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch, self.momentum, self.eps)
