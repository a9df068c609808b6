"""The float64 oracle: exact statistics, the exact output and input gradient, and the one
batch-norm formula every model subject shares (it has no bug switches: broken batch norms
are subjects of their own, in bn_invariants.zoo)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bn_invariants.invariants.conventions import declared
from bn_invariants.strategies import accumulation_dtype, torch_dtype


@dataclass(frozen=True)
class Statistics:
    """Per-channel batch statistics in float64, each shaped (1, C, 1, ...)."""

    mean: torch.Tensor
    var: torch.Tensor          # biased: divided by n
    std: torch.Tensor          # s = sqrt(var + eps)
    xhat: torch.Tensor         # (x - mean) / s, the input's shape
    n: int


def channel_view(values: torch.Tensor, rank: int) -> torch.Tensor:
    """A per-channel vector shaped (1, C, 1, ...) to broadcast against rank-``rank`` input."""
    return values.reshape((1, -1) + (1,) * (rank - 2))


def reduce_dims(rank: int) -> tuple:
    """The dimensions a batch norm reduces over: all but the channel dimension."""
    return (0,) + tuple(range(2, rank))


def as_channel(values: torch.Tensor | None, rank: int):
    """A per-channel float64 CPU vector shaped (1, C, 1, ...), or None."""
    if values is None:
        return None
    return channel_view(values.detach().to("cpu", torch.float64), rank)


def as64(t: torch.Tensor | None) -> torch.Tensor | None:
    """A float64 CPU copy of ``t`` (never an alias: buffers change in place), or None."""
    return None if t is None else t.detach().to("cpu", torch.float64).clone()


def per_channel_sum(values: torch.Tensor) -> torch.Tensor:
    """sum over every dimension but the channel one, (C,) float64."""
    return values.double().sum(reduce_dims(values.dim())).flatten()


def channel_scale(x: torch.Tensor) -> torch.Tensor:
    """A per-channel power of two c >= 1, (1, C, 1, ...), with max|x / c| < 2: dividing by
    it is exact and keeps sums of squares from overflowing."""
    peak = x.detach().abs().amax(reduce_dims(x.dim()), keepdim=True).clamp_min(1.0)
    return torch.exp2(torch.floor(torch.log2(peak)))


def statistics(x: torch.Tensor, eps: float) -> Statistics:
    """Two-pass batch statistics of ``x``, computed in float64 on the CPU (each channel
    scaled by a power of two first, so huge values do not overflow the variance)."""
    x64 = x.detach().to("cpu", torch.float64)
    dims = reduce_dims(x64.dim())
    c = channel_scale(x64)
    scaled = x64 / c
    mean_s = scaled.mean(dims, keepdim=True)
    var_s = ((scaled - mean_s) ** 2).mean(dims, keepdim=True)
    std = c * (var_s + eps / c**2).sqrt()
    n = x64.numel() // max(x64.shape[1], 1)
    return Statistics(c * mean_s, c**2 * var_s, std, (scaled - mean_s) / (std / c), n)


def exact_output(stats: Statistics, gamma=None, beta=None) -> torch.Tensor:
    """gamma * xhat + beta in float64 (xhat alone without affine parameters)."""
    return stats.xhat if gamma is None else stats.xhat * gamma + beta


def gradient_means(stats: Statistics, g: torch.Tensor):
    """(ḡ, c̄ = mean(g x̂), mean|g|, mean|g x̂|) per channel, (1, C, 1, ...) each."""
    dims = reduce_dims(g.dim())
    return (g.mean(dims, keepdim=True), (g * stats.xhat).mean(dims, keepdim=True),
            g.abs().mean(dims, keepdim=True), (g * stats.xhat).abs().mean(dims, keepdim=True))


def closed_form(stats: Statistics, g: torch.Tensor, gamma=None) -> torch.Tensor:
    """dl/dx = (gamma/s)(g - ḡ - x̂ c̄) in float64, from exact statistics ``stats``, for
    l = sum(g * BN(x)) (Ioffe & Szegedy 2015, section 3)."""
    g_mean, gx_mean, _, _ = gradient_means(stats, g)
    scale = (1.0 if gamma is None else gamma) / stats.std
    return scale * (g - g_mean - stats.xhat * gx_mean)


def radial_value(stats: Statistics, g: torch.Tensor, gamma, eps: float) -> torch.Tensor:
    """sum_i x_i dl/dx_i = s sum_i x̂_i dl/dx_i = gamma (eps/(var + eps)) sum_i g_i x̂_i
    per channel, (C,) float64: zero when eps = 0 (the gradient is orthogonal to x)."""
    dims = reduce_dims(g.dim())
    gamma = 1.0 if gamma is None else gamma
    ratio = eps / (stats.var + eps) if eps > 0 else torch.zeros_like(stats.var)
    return (gamma * ratio * (g * stats.xhat).sum(dims, keepdim=True)).flatten()


def batch_norm(x, weight, bias, running_mean, running_var, *, training, momentum, eps,
               num_batches_tracked=None):
    """Batch norm by the formula, in x's dtype, with torch's semantics.

    Training uses the biased batch variance to normalise and folds the unbiased
    one into running_var; momentum=None is a cumulative average.
    """
    rank = x.dim()
    dims = reduce_dims(rank)
    use_batch = training or running_mean is None
    if use_batch:
        n = x.numel() // x.shape[1]
        if training and n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, "
                             f"got input size {tuple(x.shape)}")
        c = channel_scale(x)
        x = x / c
        mean = x.mean(dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dims, keepdim=True)
        if training and running_mean is not None:
            _update_running(running_mean, running_var, num_batches_tracked,
                            c.double() * mean.double(), c.double() ** 2 * var.double(), n, momentum)
        y = (x - mean) / (var + eps / c**2).sqrt()
    else:
        mean = channel_view(running_mean.to(x.dtype), rank)
        var = channel_view(running_var.to(x.dtype), rank)
        y = (x - mean) / (var + eps).sqrt()
    if weight is not None:
        y = y * channel_view(weight.to(x.dtype), rank) + channel_view(bias.to(x.dtype), rank)
    return y


@torch.no_grad()
def _update_running(running_mean, running_var, num_batches_tracked, mean, var, n, momentum):
    """Fold float64 batch statistics into the buffers, computed in float64, rounded once."""
    if num_batches_tracked is not None:
        num_batches_tracked.add_(1)
    conventions = declared()  # torch's unless the subject declared others
    factor = (1.0 / float(num_batches_tracked) if momentum is None
              else conventions.batch_weight(momentum))
    unbiased = var.flatten() * conventions.variance_factor(n)
    new_mean = (1 - factor) * running_mean.double() + factor * mean.flatten()
    new_var = (1 - factor) * running_var.double() + factor * unbiased
    running_mean.copy_(new_mean.to(running_mean.dtype))
    running_var.copy_(new_var.to(running_var.dtype))


class BatchNormModule(nn.Module):
    """torch.nn.BatchNorm2d's constructor, parameters and buffers, and nothing else: the
    one constructor the model subjects and the zoo's batch norms share."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        kw = {"device": device, "dtype": dtype}
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **kw))
            self.bias = nn.Parameter(torch.zeros(num_features, **kw))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
            self.register_buffer("num_batches_tracked",
                                 torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)


class ModelBatchNorm(BatchNormModule):
    """A BatchNorm2d-compatible module computing ``batch_norm`` in ``compute_dtype``
    (None: the input's accumulation dtype), returning the input's dtype."""

    compute_dtype: str | None = None

    def forward(self, x):
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}, *) input, got {tuple(x.shape)}")
        compute = torch_dtype(self.compute_dtype or accumulation_dtype(str(x.dtype)[6:]))
        y = batch_norm(
            x.to(compute), self.weight, self.bias, self.running_mean, self.running_var,
            training=self.training, momentum=self.momentum, eps=self.eps,
            num_batches_tracked=self.num_batches_tracked)
        return y.to(x.dtype)


class ReferenceBatchNorm(ModelBatchNorm):
    """The float64 oracle as a subject: computes in float64, rounds once to the input dtype."""

    compute_dtype = "float64"
