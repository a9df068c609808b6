"""Numerical bugs: the formula is right on paper, wrong in floating point or by a constant."""
from __future__ import annotations

import torch

from bn_invariants.zoo.base import ZooBatchNorm


class NaiveVarianceBatchNorm(ZooBatchNorm):
    """Variance as E[x²] − E[x]² (one pass), accumulated in float32.

    Exact in real arithmetic; in floating point both terms are ≈ μ² when |μ| ≫ σ and
    their difference cancels catastrophically: the variance comes out wrong, zero
    or negative (NaN after the square root)."""

    BUG = "variance computed as E[x²] − E[x]² (catastrophic cancellation)"
    CAUSE = "naive-variance"
    SOURCE = ("google/flax#1491, tensorflow/tensorflow#3290, tenstorrent/tt-metal#45968; "
              "Chan, Golub & LeVeque (1983)")
    CAUGHT_BY = ("shift-invariance", "output-moments")

    def batch_statistics(self, x, dims):
        mean = x.mean(dims, keepdim=True)
        var = (x * x).mean(dims, keepdim=True) - mean * mean
        return mean, var


class HalfStatisticsBatchNorm(ZooBatchNorm):
    """Statistics of float16/bfloat16 inputs computed with torch ops in the input's dtype.

    torch's CPU reductions accumulate a half tensor in float32 internally, so this rounds
    the statistics and the intermediates (x − μ, its square) to half precision, but does
    not accumulate in half: see HalfAccumulationBatchNorm for that."""

    BUG = "statistics of half-precision input rounded to half precision (mean, x − μ, squares)"
    CAUSE = "low-precision-statistics"
    SOURCE = ("pytorch/pytorch#126525 (Half var_sum overflow in CPU batch norm); "
              "tensorflow/tensorflow#8535; Micikevicius et al. (2018), Mixed Precision Training")
    CAUGHT_BY = ("half-precision-ulp",)

    def compute_dtype(self, dtype):
        return dtype


class EpsOutsideSqrtBatchNorm(ZooBatchNorm):
    """Normalises by √Var + ε instead of √(Var + ε)."""

    BUG = "eps added outside the square root: (x − μ)/(√σ² + ε)"
    CAUSE = "eps-placement"
    SOURCE = "Tencent/ncnn#311 review; tensorflow/tensorflow#24690 (doc and code disagree)"
    CAUGHT_BY = ("output-moments", "agrees-with-reference")

    def normalise(self, x, mean, var, unit=1.0):
        return (x - mean) / (torch.sqrt(var) + self.eps / unit)


class UnbiasedNormalisationBatchNorm(ZooBatchNorm):
    """Normalises with ``x.var(dims)``, torch's default unbiased (n − 1) variance.

    Batch norm normalises with the biased batch variance (only running_var takes
    the unbiased one), so every output is scaled by √((n − 1)/n)."""

    BUG = "normalises with the unbiased variance (torch.var's default correction=1)"
    CAUSE = "unbiased-normalisation"
    SOURCE = ("pytorch/pytorch#60528, #77427, #19902 (users reproducing BatchNorm with "
              "x.var()); tinygrad/tinygrad#779")
    CAUGHT_BY = ("output-moments", "agrees-with-reference")

    def batch_statistics(self, x, dims):
        return x.mean(dims, keepdim=True), x.var(dims, keepdim=True)


def half_sum(values: torch.Tensor, dims: tuple) -> torch.Tensor:
    """Sum over ``dims`` (kept) in the input's own dtype, pairwise, every partial sum
    rounded to it: a true half-precision accumulation (torch's own sum accumulates a half
    tensor in float32)."""
    rows = values.movedim(1, 0).reshape(values.shape[1], -1)
    while rows.shape[1] > 1:
        if rows.shape[1] % 2:
            rows = torch.cat([rows, torch.zeros_like(rows[:, :1])], 1)
        rows = rows[:, 0::2] + rows[:, 1::2]
    return rows.reshape((1, -1) + (1,) * (values.dim() - 2))


class HalfAccumulationBatchNorm(HalfStatisticsBatchNorm):
    """Statistics of float16/bfloat16 input accumulated in half precision: every partial
    sum of the mean and of the squared deviations rounded to the input dtype (HalfStatistics
    rounds only the results; its sources and catcher are this one's too)."""

    BUG = "statistics of half-precision input accumulated in half precision (pairwise sums)"
    CAUSE = "low-precision-statistics"

    def batch_statistics(self, x, dims):
        if x.dtype not in (torch.float16, torch.bfloat16):
            return super().batch_statistics(x, dims)
        n = x.numel() // max(x.shape[1], 1)
        mean = half_sum(x, dims) / n
        var = half_sum((x - mean) ** 2, dims) / n
        return mean, var
