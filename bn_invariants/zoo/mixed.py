"""Bugs of mixed precision: half-precision input with float32 parameters."""
from __future__ import annotations

from bn_invariants.zoo.base import ZooBatchNorm, channel_view


class DowncastParametersBatchNorm(ZooBatchNorm):
    """Casts the float32 weight and bias down to the input's dtype before the affine step.

    With parameters in the input's own dtype nothing changes (the cast is a no-op), so
    every single-precision and half-precision check passes. Under mixed precision
    (float16 or bfloat16 input, float32 parameters) γ and β lose their low bits: the
    output is off by u_half (|γ x̂| + |β|), many ulps where γ x̂ + β nearly cancels."""

    BUG = "float32 weight and bias cast down to the half-precision input's dtype"
    CAUSE = "mixed-precision"
    SOURCE = ("apple/coreai-torch#54 (fp16 batch norm downcasting its fp32 params); "
              "Oneflow-Inc/oneflow#9381; Micikevicius et al. (2018), Mixed Precision Training")
    CAUGHT_BY = ("mixed-precision",)

    def forward(self, x):
        self.input_dtype = x.dtype
        return super().forward(x)

    def scale_shift(self, xhat):
        if self.weight is None:
            return xhat
        rank, narrow = xhat.dim(), self.input_dtype
        return (xhat * channel_view(self.weight.to(narrow).to(xhat.dtype), rank)
                + channel_view(self.bias.to(narrow).to(xhat.dtype), rank))
