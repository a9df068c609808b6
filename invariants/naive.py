"""The naive rule of Ioffe & Szegedy (2015, section 2) as subjects the suite must catch.

Forward passes are correct; only the gradient is wrong: it treats E[x] (and, in
the scaling variant, Var[x]) as constants, so a bias before the normalisation
gets a non-zero gradient that changes nothing, and drifts without bound.
"""
from __future__ import annotations

from bn_invariants.invariants.reference import ModelBatchNorm


class NaiveCenteringBatchNorm(ModelBatchNorm):
    """Gradient ignores E[x]'s dependence on x: the paper's example."""

    detach_mean = True


class NaiveScalingBatchNorm(ModelBatchNorm):
    """Gradient ignores both E[x]'s and Var[x]'s dependence on x."""

    detach_mean = True
    detach_var = True
