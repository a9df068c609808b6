"""The zoo: deliberately broken batch norms, one bug each, that the suite must catch.

Each mutant is a class with torch.nn.BatchNorm2d's constructor, taking (N, C, *)
input of rank 2 to 5, and carries three attributes:

* ``BUG``: the one bug, in one line;
* ``SOURCE``: where this class of bug has been reported;
* ``CAUGHT_BY``: 1 to 3 invariant ids that catch it (chosen from the kill matrix,
  docs/kill-matrix.md), asserted by tests/test_zoo.py.

CONTROLS are correct implementations written the same way; they must pass every
invariant, so a mutant's failure can only come from its bug.  Any of them can be
checked by the suite: ``pytest --bn-impl=bn_invariants.zoo.detached_mean:DetachedMeanBatchNorm``.
"""
from bn_invariants.zoo.affine import BetaBeforeNormalisationBatchNorm
from bn_invariants.zoo.base import ZooBatchNorm
from bn_invariants.zoo.custom_backward import SavedStatisticsBatchNorm, WrongWeightGradientBatchNorm
from bn_invariants.zoo.detached_mean import DetachedMeanBatchNorm
from bn_invariants.zoo.edge_cases import (EmptyBatchPoisonsStatsBatchNorm, NondeterministicBatchNorm,
                                  SilentSingleValueBatchNorm)
from bn_invariants.zoo.gradients import DetachedVarianceBatchNorm
from bn_invariants.zoo.manual import ManualBackwardBatchNorm
from bn_invariants.zoo.memory import ChannelsLastAsNCHWBatchNorm, InPlaceInputBatchNorm
from bn_invariants.zoo.mixed import DowncastParametersBatchNorm
from bn_invariants.zoo.modes import (EvalUpdatesRunningStatsBatchNorm, EvalUsesBatchStatsBatchNorm,
                             EvalWithoutEpsBatchNorm)
from bn_invariants.zoo.long_paths import (BFloat16UnbiasedBatchNorm, ChunkedVarianceMergeBatchNorm,
                                         FirstValuesOnlyBatchNorm, SplitReductionBatchNorm)
from bn_invariants.zoo.numerics import (EpsOutsideSqrtBatchNorm, HalfAccumulationBatchNorm,
                                        HalfStatisticsBatchNorm, NaiveVarianceBatchNorm,
                                        UnbiasedNormalisationBatchNorm)
from bn_invariants.zoo.running_stats import (BiasedRunningVarianceBatchNorm,
                                     CumulativeAverageOffByOneBatchNorm, FlippedMomentumBatchNorm,
                                     UncountedBatchesBatchNorm)

CONTROLS = (ZooBatchNorm, ManualBackwardBatchNorm)
"""Correct batch norms written like the mutants: they must pass every invariant."""

PATH_MUTANTS = (
    HalfAccumulationBatchNorm,
    ChunkedVarianceMergeBatchNorm,
    SplitReductionBatchNorm,
    BFloat16UnbiasedBatchNorm,
    FirstValuesOnlyBatchNorm,
)
"""Bugs on one path only (long reductions, chunked merges, one dtype, half accumulation, a
reduction that stops at 2**16 values), the last of MUTANTS: caught by the search and by the
long cases every run checks
(tests/test_detection_power.py); their catch rate over seeded runs is in
docs/time-to-detect.md."""

MUTANTS = (
    DetachedMeanBatchNorm,
    DetachedVarianceBatchNorm,
    WrongWeightGradientBatchNorm,
    SavedStatisticsBatchNorm,
    NaiveVarianceBatchNorm,
    HalfStatisticsBatchNorm,
    EpsOutsideSqrtBatchNorm,
    UnbiasedNormalisationBatchNorm,
    BetaBeforeNormalisationBatchNorm,
    BiasedRunningVarianceBatchNorm,
    FlippedMomentumBatchNorm,
    CumulativeAverageOffByOneBatchNorm,
    UncountedBatchesBatchNorm,
    EvalUsesBatchStatsBatchNorm,
    EvalUpdatesRunningStatsBatchNorm,
    EvalWithoutEpsBatchNorm,
    ChannelsLastAsNCHWBatchNorm,
    InPlaceInputBatchNorm,
    SilentSingleValueBatchNorm,
    EmptyBatchPoisonsStatsBatchNorm,
    NondeterministicBatchNorm,
    DowncastParametersBatchNorm,
) + PATH_MUTANTS
"""One bug each; the suite must catch every one."""


def spec(cls) -> str:
    """The ``--bn-impl`` spelling of a zoo class, e.g. 'bn_invariants.zoo.detached_mean:DetachedMeanBatchNorm'."""
    return f"{cls.__module__}:{cls.__qualname__}"
