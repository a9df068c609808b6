"""The zoo: deliberately broken batch norms, one bug each, that the suite must catch.

Each mutant is a class with torch.nn.BatchNorm2d's constructor, taking (N, C, *)
input of rank 2 to 5, and carries three attributes:

* ``BUG``: the one bug, in one line;
* ``SOURCE``: where this class of bug has been reported;
* ``CAUGHT_BY``: 1 to 3 invariant ids that catch it (chosen from the kill matrix,
  docs/kill-matrix.md), asserted by tests/test_zoo.py.

CONTROLS are correct implementations written the same way; they must pass every
invariant, so a mutant's failure can only come from its bug.  Any of them can be
checked by the suite: ``pytest --bn-impl=tests.zoo.detached_mean:DetachedMeanBatchNorm``.
"""
from tests.zoo.affine import BetaBeforeNormalisationBatchNorm
from tests.zoo.base import ZooBatchNorm
from tests.zoo.custom_backward import SavedStatisticsBatchNorm, WrongWeightGradientBatchNorm
from tests.zoo.detached_mean import DetachedMeanBatchNorm
from tests.zoo.edge_cases import (EmptyBatchPoisonsStatsBatchNorm, NondeterministicBatchNorm,
                                  SilentSingleValueBatchNorm)
from tests.zoo.gradients import DetachedVarianceBatchNorm
from tests.zoo.manual import ManualBackwardBatchNorm
from tests.zoo.memory import ChannelsLastAsNCHWBatchNorm, InPlaceInputBatchNorm
from tests.zoo.mixed import DowncastParametersBatchNorm
from tests.zoo.modes import (EvalUpdatesRunningStatsBatchNorm, EvalUsesBatchStatsBatchNorm,
                             EvalWithoutEpsBatchNorm)
from tests.zoo.numerics import (EpsOutsideSqrtBatchNorm, HalfStatisticsBatchNorm,
                                NaiveVarianceBatchNorm, UnbiasedNormalisationBatchNorm)
from tests.zoo.running_stats import (BiasedRunningVarianceBatchNorm,
                                     CumulativeAverageOffByOneBatchNorm, FlippedMomentumBatchNorm,
                                     UncountedBatchesBatchNorm)

CONTROLS = (ZooBatchNorm, ManualBackwardBatchNorm)
"""Correct batch norms written like the mutants: they must pass every invariant."""

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
)
"""One bug each; the suite must catch every one."""


def spec(cls) -> str:
    """The ``--bn-impl`` spelling of a zoo class, e.g. 'tests.zoo.detached_mean:DetachedMeanBatchNorm'."""
    return f"{cls.__module__}:{cls.__qualname__}"
