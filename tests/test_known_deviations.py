"""Each known deviation of torch's batch norm, replayed from its minimal counterexample.

Strict: the day torch fixes one, this test fails and the entry must go.
"""
import pytest
import torch

from invariants import REGISTRY, InvariantViolation
from invariants.deviations import DEVIATIONS
from invariants.subjects import BUILTIN_SUBJECTS

CASES = [
    pytest.param(dev, subject, id=f"{dev.invariant}-{subject.name}-{dev.device}",
                 marks=[pytest.mark.xfail(strict=True, raises=InvariantViolation,
                                          reason=dev.explanation)]
                 + ([] if dev.device == "cpu" or torch.cuda.is_available() else
                    [pytest.mark.skip(reason=f"{dev.device} is not available on this machine")]))
    for dev in DEVIATIONS
    for subject in BUILTIN_SUBJECTS
    if subject.factory in dev.factories
]


@pytest.mark.parametrize("deviation, subject", CASES)
def test_known_deviation(deviation, subject):
    case = deviation.counterexample
    if len(case.problem.shape) not in _ranks(subject):
        pytest.skip(f"{subject} does not take rank {len(case.problem.shape)}")
    REGISTRY[deviation.invariant].check(subject, case)


def _ranks(subject):
    from invariants.coverage import probe
    return probe(subject, "cpu").dtype_ranks.get("float32", ())
