"""A batch norm that refuses, with Python's standard OverflowError, statistics that
overflow: a clear error, as good as torch's ValueError.  It checks the sum of squares,
the quantity a one-pass kernel (torch's included) accumulates, and only then calls
torch's kernel."""
from __future__ import annotations

import torch
from torch import nn


class CheckedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """torch's batch norm over (N, C, *) input of any rank, after checking that the
    batch variance is finite in the accumulation dtype."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input):
        if (self.training or not self.track_running_stats) and input.numel() > 0:
            acc = torch.float64 if input.dtype == torch.float64 else torch.float32
            dims = (0,) + tuple(range(2, input.dim()))
            squares = (input.detach().to(acc) ** 2).sum(dim=dims)
            if not bool(torch.isfinite(squares).all()):
                raise OverflowError(f"the batch's sum of squares overflows {acc}: "
                                    f"rescale the input")
        return super().forward(input)
