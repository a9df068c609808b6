"""The paper's naive rule: the gradient treats the batch mean as a constant."""
from __future__ import annotations

from bn_invariants.zoo.base import ZooBatchNorm


class DetachedMeanBatchNorm(ZooBatchNorm):
    """Batch norm whose backward ignores that E[x] depends on x (``mean.detach()``).

    The forward pass is exact; only dl/dx loses the -mean(g) term.  Ioffe & Szegedy
    (2015, section 2) show this is what goes wrong when the normalisation is left
    outside the gradient step: a bias before the layer gets the gradient (γ/s)Σg,
    which changes nothing in the output, and grows without bound.
    """

    BUG = "the batch mean is detached from the graph (mean.detach())"
    CAUSE = "detached-mean"
    SOURCE = "Ioffe & Szegedy (2015), section 2: the naive rule that makes a bias blow up"
    CAUGHT_BY = ("zero-bias-gradient", "input-gradient-sums-to-zero")

    def batch_statistics(self, x, dims):
        mean = x.mean(dims, keepdim=True).detach()
        var = ((x - mean) ** 2).mean(dims, keepdim=True)
        return mean, var


class DetachedStatisticsBatchNorm(ZooBatchNorm):
    """Batch norm whose backward treats both E[x] and Var[x] as constants: the naive rule
    for a normalisation that also scales (Ioffe & Szegedy 2015, section 2).

    Not one of the zoo's MUTANTS (its two bugs are DetachedMeanBatchNorm's and
    DetachedVarianceBatchNorm's); the explainer's plots and tests/test_naive_rule.py use it.
    """

    BUG = "the batch mean and variance are detached from the graph"
    CAUSE = "detached-mean"
    SOURCE = "Ioffe & Szegedy (2015), section 2"
    CAUGHT_BY = ("zero-bias-gradient", "input-gradient-sums-to-zero")

    def batch_statistics(self, x, dims):
        mean = x.mean(dims, keepdim=True).detach()
        var = ((x - mean) ** 2).mean(dims, keepdim=True).detach()
        return mean, var
