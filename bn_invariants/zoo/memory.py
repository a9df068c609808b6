"""Bugs of memory: layout and aliasing."""
from __future__ import annotations

import torch

from bn_invariants.zoo.base import ZooBatchNorm


def contiguous_strides(shape) -> tuple:
    """The strides of a contiguous (row-major) tensor of ``shape``."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


class ChannelsLastAsNCHWBatchNorm(ZooBatchNorm):
    """Reads a channels-last input's memory as if it were NCHW (a kernel that takes
    ``data_ptr()`` and assumes contiguity), mixing values of different channels."""

    BUG = "channels-last input read with contiguous NCHW strides"
    CAUSE = "layout"
    SOURCE = "pytorch/pytorch#62594; NVIDIA/apex#1768; intel/ipex-llm#2981"
    CAUGHT_BY = ("layout-independence", "channel-independence")

    def read(self, x):
        channels_last = x.dim() > 2 and x.stride(1) == 1 and x.shape[1] > 1 and not x.is_contiguous()
        if not channels_last:
            return x
        return x.as_strided(x.shape, contiguous_strides(x.shape), x.storage_offset())


class InPlaceInputBatchNorm(ZooBatchNorm):
    """Normalises in place when no gradient is needed, to save memory, overwriting the
    caller's tensor (the input of a float32/float64 call is the buffer computed on):
    both steps, the division into units and the normalisation, work in place."""

    BUG = "normalises the caller's input tensor in place when it does not require grad"
    CAUSE = "side-effects"
    SOURCE = ("Rota Bulò et al. (2018), In-Place Activated BatchNorm (the memory motive); "
              "the in-place pitfalls of torch.nn.ReLU(inplace=True)")
    CAUGHT_BY = ("input-not-modified", "eval-per-sample-independence")

    def to_units(self, x, unit):
        return super().to_units(x, unit) if x.requires_grad else x.div_(unit)

    def normalise(self, x, mean, var, unit=1.0):
        if x.requires_grad:
            return super().normalise(x, mean, var, unit)
        return x.sub_(mean).div_(torch.sqrt(var + self.eps_in(unit)))
