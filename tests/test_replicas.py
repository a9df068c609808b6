"""--bn-replicas: several problems per drawn example, each reproducible on its own."""

from bn_invariants.strategies.profiles import profile
from bn_invariants import invariants
from bn_invariants.invariants import REGISTRY
from bn_invariants.invariants.coverage import probe
from bn_invariants.invariants.params import BiasOffset, Shift
from bn_invariants.invariants.cases import Case
from bn_invariants.invariants.runner import REPLICA_BUDGET, check_case, find_violation, replicas_of, target_for
from bn_invariants.invariants.subjects import Subject
from bn_invariants.strategies import BNOptions, Problem
from tests.test_bn_impl import run_pytest
from bn_invariants.zoo.detached_mean import DetachedMeanBatchNorm


def test_replicas_share_everything_but_the_seed():
    case = Case(Problem(shape=(4, 3, 2), regime="offset", seed=7), Shift(shift=0.5, exact=False))
    variants = list(replicas_of(case, 5))
    assert variants[0] is case
    assert len({v.problem.seed for v in variants}) == 5
    for v in variants:
        assert v.params == case.params
        assert (v.problem.shape, v.problem.regime) == (case.problem.shape, case.problem.regime)


def test_large_problems_are_not_replicated():
    big = Case(Problem(shape=(REPLICA_BUDGET + 1, 1)))
    assert list(replicas_of(big, 8)) == [big]
    assert len(list(replicas_of(Case(Problem(shape=(2, 1))), 1))) == 1


def test_a_failing_replica_is_reported_with_its_own_reproduction():
    subject = Subject("bn_invariants.zoo.detached_mean:DetachedMeanBatchNorm", DetachedMeanBatchNorm)
    target = target_for(REGISTRY["zero-bias-gradient"], subject, probe(subject, "cpu"),
                        replicas=4)
    error = find_violation(target, profile("ci"))
    assert isinstance(error, invariants.InvariantViolation)
    reported = error.reproduction
    assert reported == eval(repr(reported), {"Case": Case, "Problem": Problem,
                                             "BNOptions": BNOptions, "BiasOffset": BiasOffset})
    assert reported.problem.shape == (2, 1)  # shrunk
    try:
        check_case(target.invariant, subject, reported)
    except invariants.InvariantViolation:
        return
    raise AssertionError(f"the reported case does not fail again: {reported!r}")


def test_replicas_below_one_is_a_usage_error():
    result = run_pytest("--collect-only", "-q", "--bn-replicas=0")
    assert result.returncode == 4
    assert "--bn-replicas=0: should be a whole number, at least 1" in result.stderr
