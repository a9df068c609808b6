"""A correct batch norm written the way a user writes one, in small overridable steps.

``ZooBatchNorm`` is the control of the zoo: it must pass every invariant.  Each
mutant subclasses it and overrides exactly one step with a bug, so a mutant's
failure can only come from that bug.  The steps mirror torch.nn.BatchNorm2d's
semantics (and ``torch.nn.functional.batch_norm``'s for ranks 2 to 5):

* training: normalise with the biased batch variance, fold the unbiased one into
  ``running_var``; ``momentum=None`` is a cumulative average over
  ``num_batches_tracked``, which counts every training call (an empty batch too);
* eval: normalise with the running statistics, change no state;
* ``track_running_stats=False``: batch statistics in both modes, no state;
* statistics of half-precision inputs are accumulated in float32;
* statistics are taken of the input divided, per channel, by a power of two near
  its largest magnitude (exact, and undone on the way out), so no square overflows
  or underflows at any scale the dtype holds.
"""
from __future__ import annotations

import torch

from bn_invariants.invariants.reference import BatchNormModule, channel_view


class ZooBatchNorm(BatchNormModule):
    """Batch norm over (N, C, *) input of rank 2 to 5, with BatchNorm2d's constructor
    (``BatchNormModule``, shared with the suite's model subjects)."""

    BUG = "none: the zoo's control"
    SOURCE = "torch.nn.BatchNorm2d documentation; Ioffe & Szegedy (2015), Algorithm 1"
    CAUGHT_BY: tuple = ()

    # --- the steps a mutant may override -------------------------------------------

    def read(self, x: torch.Tensor) -> torch.Tensor:
        """The input as a logical (N, C, *) tensor, whatever its memory layout."""
        return x

    def reduce_dims(self, rank: int) -> tuple:
        """The dimensions statistics are taken over: all but the channel dimension."""
        return (0,) + tuple(range(2, rank))

    def compute_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype statistics are accumulated in: float32 for half types."""
        return torch.float64 if dtype == torch.float64 else torch.float32

    def batch_statistics(self, x: torch.Tensor, dims: tuple):
        """(mean, biased variance) per channel, two-pass, kept as (1, C, 1, ...)."""
        mean = x.mean(dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dims, keepdim=True)
        return mean, var

    def uses_batch_statistics(self) -> bool:
        """Training mode, or no running statistics to use."""
        return self.training or self.running_mean is None

    def updates_running_statistics(self) -> bool:
        """Only a training call with running statistics changes state."""
        return self.training and self.running_mean is not None

    def count_batch(self) -> None:
        """num_batches_tracked counts every training call, whatever the momentum."""
        self.num_batches_tracked.add_(1)

    def average_factor(self) -> float:
        """The weight of the new batch: momentum, or 1/t for a cumulative average."""
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    @torch.no_grad()
    def update_running(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        """running <- (1 - f) running + f batch, with the unbiased batch variance."""
        self.blend(self.average_factor(), mean, var * n / (n - 1))

    @torch.no_grad()
    def blend(self, factor: float, mean: torch.Tensor, var: torch.Tensor) -> None:
        """running <- (1 - factor) running + factor batch, in float32 (float64 for float64
        buffers) and rounded once, so a half-precision buffer overflows only when the
        result itself does."""
        for buffer, batch in ((self.running_mean, mean), (self.running_var, var)):
            wide = torch.float64 if buffer.dtype == torch.float64 else torch.float32
            buffer.copy_((1 - factor) * buffer.to(wide) + factor * batch.flatten().to(wide))

    def unit_of(self, x: torch.Tensor, dims: tuple) -> torch.Tensor:
        """Per channel, the power of two at or just below max|x| (1 for an empty, zero
        or non-finite channel), as (1, C, 1, ...) in x's dtype."""
        ones = torch.ones((1, x.shape[1]) + (1,) * (x.dim() - 2), dtype=torch.float64,
                          device=x.device)
        if x.numel() == 0:
            return ones.to(x.dtype)
        largest = x.detach().abs().amax(dims, keepdim=True).double()
        unit = torch.ldexp(ones, torch.frexp(largest).exponent - 1)
        usable = (largest > 0) & torch.isfinite(largest)
        return torch.where(usable, unit, ones).to(x.dtype)

    def to_units(self, x: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
        """x / unit: exact, a power of two per channel."""
        return x / unit

    def eps_in(self, unit) -> torch.Tensor | float:
        """eps in the units of x² when x is measured in ``unit`` (eps / unit²)."""
        if isinstance(unit, float):
            return self.eps / unit ** 2
        return (self.eps / unit.double() ** 2).to(unit.dtype)

    def normalise(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                  unit=1.0) -> torch.Tensor:
        """x̂ = (x - mean) / sqrt(var + eps), with x and mean measured in ``unit``."""
        return (x - mean) / torch.sqrt(var + self.eps_in(unit))

    def scale_shift(self, xhat: torch.Tensor) -> torch.Tensor:
        """y = γ x̂ + β (or x̂ without affine parameters)."""
        if self.weight is None:
            return xhat
        rank = xhat.dim()
        return (xhat * channel_view(self.weight.to(xhat.dtype), rank)
                + channel_view(self.bias.to(xhat.dtype), rank))

    def train_normalise(self, x: torch.Tensor, dims: tuple):
        """(output, mean, var) of a batch-statistics pass, the statistics taken in
        per-channel units and returned in x's; the custom-backward implementations
        replace this with an autograd.Function."""
        unit = self.unit_of(x, dims)
        scaled = self.to_units(x, unit)
        mean, var = self.batch_statistics(scaled, dims)
        y = self.scale_shift(self.normalise(scaled, mean, var, unit))
        return y, mean * unit, var * unit * unit

    # --- the pass itself ------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not 2 <= x.dim() <= 5 or x.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}, *) input of rank 2 to 5, "
                             f"got {tuple(x.shape)}")
        logical = self.read(x)
        dims = self.reduce_dims(logical.dim())
        n = 1
        for d in dims:
            n *= logical.shape[d]
        if self.uses_batch_statistics() and n == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, "
                             f"got input size {tuple(x.shape)}")
        computed = logical.to(self.compute_dtype(x.dtype))
        updating = self.updates_running_statistics()
        if self.uses_batch_statistics():
            y, mean, var = self.train_normalise(computed, dims)
        else:
            rank = computed.dim()
            mean = channel_view(self.running_mean.to(computed.dtype), rank)
            var = channel_view(self.running_var.to(computed.dtype), rank)
            y = self.scale_shift(self.normalise(computed, mean, var))
            if updating:  # only a mutant updates while normalising with running stats
                mean, var = self.batch_statistics(computed.detach(), dims)
        if updating:
            self.count_batch()
            if n > 1:
                self.update_running(mean.detach(), var.detach(), n)
        return y.to(x.dtype)
