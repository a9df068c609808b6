"""A reference distributed batch norm written on plain torch.distributed collectives.

Training mode (or no running statistics) normalises with the statistics of the
global batch, the concatenation of every rank's slice, in three all-reduces:

1. MAX of each channel's largest |x|, giving a power-of-two scale c shared by every
   rank (dividing by it is exact and keeps the squares below from overflowing);
2. SUM of (n_r, sum_r x/c), giving the global count n and mean mu;
3. SUM of sum_r (x/c - mu)^2, the second moment centred on the *global* mean, so no
   between-rank term is needed: var = M2 / n exactly as on one process.

Backward all-reduces sum(g') and sum(g' x̂) (g' = gamma g, the gradient reaching x̂),
so dl/dx_r = (g' - mean g' - x̂ mean(g' x̂)) / s with global means.  The affine map
is ordinary autograd: each rank's dl/dgamma and dl/dbeta are its own slice's sums
(data-parallel training all-reduces parameter gradients itself).  Running
statistics fold in the global mean and the variance unbiased with the global count.
Eval mode with running statistics is purely local.  An empty slice takes part in
every collective with zero count.

Each collective goes through an overridable method, so the zoo's mutants
(tests/zoo/distributed.py) differ from it in exactly one step.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from bn_invariants.invariants.reference import (ModelBatchNorm, _update_running, channel_view,
                                                reduce_dims)
from bn_invariants.strategies import accumulation_dtype, torch_dtype


class _Normalise(torch.autograd.Function):
    """x̂ = (x/c - mu)/sqrt(var + eps/c^2) with global statistics, and its backward."""

    @staticmethod
    def forward(ctx, x, module, eps):
        xhat, stats = module.normalise(x, eps)
        ctx.module = module
        ctx.save_for_backward(xhat, stats["inv_std"])
        ctx.count = stats["count"]
        return xhat

    @staticmethod
    def backward(ctx, grad):
        xhat, inv_std = ctx.saved_tensors
        return ctx.module.input_gradient(grad, xhat, inv_std, ctx.count), None, None


class AllReduceBatchNorm(ModelBatchNorm):
    """A synchronised batch norm with BatchNorm2d's constructor, for an initialised
    process group (every rank calls it the same number of times)."""

    accepts_empty_slice = True
    """Whether a rank may hold an empty slice (the suite then draws one)."""

    # --- collectives: the steps a mutant may override -----------------------------

    def world_size(self) -> int:
        """Ranks taking part: the default process group's size."""
        return dist.get_world_size()

    def all_reduce(self, values: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
        """``values`` reduced over every rank (nothing to do on a world of one)."""
        if self.world_size() > 1:
            dist.all_reduce(values, op)
        return values

    def global_mean(self, xs: torch.Tensor, dims) -> tuple:
        """(n, mu) of the global batch from each rank's count and sum."""
        count = torch.full((1,) + xs.shape[1:2], float(xs.numel() // max(xs.shape[1], 1)),
                           dtype=xs.dtype, device=xs.device)
        summed = torch.cat([count, xs.sum(dims).reshape(1, -1)])
        count, total = self.all_reduce(summed)
        return count, total / count

    def global_variance(self, xs: torch.Tensor, dims, count, mean) -> torch.Tensor:
        """Biased variance of the global batch: sum of squares about the global mean."""
        centred = ((xs - channel_view(mean, xs.dim())) ** 2).sum(dims)
        return self.all_reduce(centred) / count

    def bessel_count(self, count: int, local_count: int) -> int:
        """The n of Bessel's correction n / (n - 1) for running_var: the global count."""
        return count

    def input_gradient(self, grad, xhat, inv_std, count):
        """(g - mean g - x̂ mean(g x̂)) / s with both means over the global batch."""
        dims = reduce_dims(grad.dim())
        sums = torch.stack([grad.sum(dims), (grad * xhat).sum(dims)])
        g_mean, gx_mean = (channel_view(m, grad.dim()) for m in self.all_reduce(sums) / count)
        return (grad - g_mean - xhat * gx_mean) * inv_std

    # --- the forward pass -----------------------------------------------------------

    def normalise(self, x: torch.Tensor, eps: float):
        """x̂ with global statistics, and the statistics (running stats folded in here)."""
        dims = reduce_dims(x.dim())
        peak = x.abs().amax(dims) if x.numel() else torch.zeros(x.shape[1], dtype=x.dtype,
                                                                device=x.device)
        peak = self.all_reduce(peak.clamp_min(1.0), dist.ReduceOp.MAX)
        scale = torch.exp2(torch.floor(torch.log2(peak)))
        xs = x / channel_view(scale, x.dim())
        count, mean = self.global_mean(xs, dims)
        var = self.global_variance(xs, dims, count, mean)
        inv_std = 1 / (var + eps / scale**2).sqrt()  # of x/c; 1/s = inv_std / c
        xhat = (xs - channel_view(mean, x.dim())) * channel_view(inv_std, x.dim())
        n = int(count[0])
        if self.training and self.running_mean is not None:
            _update_running(self.running_mean, self.running_var, self.num_batches_tracked,
                            scale.double() * mean.double(), scale.double() ** 2 * var.double(),
                            self.bessel_count(n, x.numel() // max(x.shape[1], 1)), self.momentum)
        return xhat, {"inv_std": channel_view(inv_std / scale, x.dim()), "count": n}

    def synchronises(self) -> bool:
        """Whether this call normalises with global batch statistics: in training mode, or
        without running statistics; eval with running statistics is purely local."""
        return self.training or self.running_mean is None

    def forward(self, x):
        if not self.synchronises():
            return super().forward(x)
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}, *) input, got {tuple(x.shape)}")
        compute = torch_dtype(accumulation_dtype(str(x.dtype).removeprefix("torch.")))
        xhat = _Normalise.apply(x.to(compute), self, self.eps)
        if self.weight is not None:
            rank = x.dim()
            xhat = (xhat * channel_view(self.weight.to(compute), rank)
                    + channel_view(self.bias.to(compute), rank))
        return xhat.to(x.dtype)
