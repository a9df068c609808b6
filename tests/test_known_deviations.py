"""Each known deviation of torch's batch norm, replayed from its minimal counterexample.

Strict: the day torch fixes one, this test fails and the entry must go.
"""
import pytest
import torch

from bn_invariants.invariants import REGISTRY, InvariantViolation
from bn_invariants.invariants.deviations import DEVIATIONS
from bn_invariants.invariants.coverage import probe
from bn_invariants.invariants.runner import check_case
from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS

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


REGIONAL = [dev for dev in DEVIATIONS if dev.region is not None]


@pytest.mark.parametrize("deviation", REGIONAL, ids=[
    f"{d.invariant}-{d.factories[0].__name__}" for d in REGIONAL])
def test_a_regional_counterexample_lies_in_its_region(deviation):
    assert deviation.contains(deviation.counterexample.problem)
    assert deviation.region_text


def test_a_region_is_left_out_of_the_search_and_the_rest_of_its_dtype_is_not():
    from hypothesis import find, settings
    from hypothesis.errors import NoSuchExample

    from bn_invariants.invariants.runner import target_for
    subject = next(s for s in BUILTIN_SUBJECTS if s.name == "torch.nn.functional.batch_norm")
    space = CPU_SPACES[subject.name].restrict(dtypes=("float16",))
    target = target_for(REGISTRY["input-gradient-closed-form"], subject, space)
    assert target.excluded and target.space.dtype_ranks  # float16 kept, a region excluded
    quick = settings(max_examples=300, database=None, derandomize=True)
    found = find(target.cases(), lambda case: case.problem.layout == "offset", settings=quick)
    assert found.problem.dtype == "float16"
    with pytest.raises(NoSuchExample):
        find(target.cases(), lambda case: case.problem.layout in ("strided", "channels_last"),
             settings=quick)
