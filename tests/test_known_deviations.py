"""Each known deviation of torch's batch norm, replayed from its minimal counterexample.

Strict: the day torch fixes one, this test fails and the entry must go.
"""
import pytest
import torch

from invariants import REGISTRY, InvariantViolation
from invariants.deviations import DEVIATIONS
from invariants.coverage import probe
from invariants.runner import check_case
from invariants.subjects import BUILTIN_SUBJECTS

CPU_SPACES = {subject.name: probe(subject, "cpu") for subject in BUILTIN_SUBJECTS}


def _takes(subject, problem) -> bool:
    """Whether ``subject`` accepts the counterexample's dtype and rank (on the CPU, where
    the ranks a module takes are the same as on any device)."""
    return len(problem.shape) in CPU_SPACES[subject.name].dtype_ranks.get(problem.dtype, ())


CASES = [
    pytest.param(dev, subject, id=f"{dev.invariant}-{subject.name}-{dev.device}",
                 marks=[pytest.mark.xfail(strict=True, raises=InvariantViolation,
                                          reason=dev.explanation)]
                 + ([] if dev.device == "cpu" or torch.cuda.is_available() else
                    [pytest.mark.skip(reason=f"{dev.device} is not available on this machine")]))
    for dev in DEVIATIONS
    for subject in BUILTIN_SUBJECTS
    if subject.factory in dev.factories and _takes(subject, dev.counterexample.problem)
]


@pytest.mark.parametrize("deviation, subject", CASES)
def test_known_deviation(deviation, subject):
    check_case(REGISTRY[deviation.invariant], subject, deviation.counterexample)
