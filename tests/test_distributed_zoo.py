"""The distributed family catches the distributed zoo: each mutant of
bn_invariants/zoo/distributed.py fails the invariants it declares in CAUGHT_BY, with
the ``ci`` search (derandomized, 30 examples, no shrinking) on W gloo workers, and fails
no invariant by a failure of the harness; and a shrunk failure reproduces from its
printed case."""
from __future__ import annotations

import inspect

import pytest

from bn_invariants import zoo
from bn_invariants.invariants import REGISTRY, DistCase, InvariantViolation, Params
from bn_invariants.invariants.distributed.subjects import REFERENCE_DIST_SUBJECT, dist_subject
from bn_invariants.invariants.runner import check_case, find_violation, target_for
from bn_invariants.outcomes import leaves
from bn_invariants.strategies import BNOptions, Problem
from bn_invariants.strategies.profiles import profile
from bn_invariants.zoo.distributed import DIST_MUTANTS, NoAllReduceBackwardBatchNorm
from tools.kill_matrix import search_settings
from tests.test_zoo import BATCHNORM2D_SIGNATURE, assert_caught


def search(cls, invariant_id: str, settings=None):
    """find_violation of a distributed invariant against a distributed zoo class."""
    subject = dist_subject(zoo.spec(cls))
    target = target_for(REGISTRY[invariant_id], subject, subject.space())
    return find_violation(target, settings or search_settings())


CAUGHT = [pytest.param(m, i, id=f"{m.__name__}-{i}") for m in DIST_MUTANTS for i in m.CAUGHT_BY]


@pytest.mark.parametrize("mutant", DIST_MUTANTS, ids=lambda m: m.__name__)
def test_mutant_is_declared(mutant):
    assert mutant.BUG and mutant.SOURCE and mutant.__doc__
    assert 1 <= len(mutant.CAUGHT_BY) <= 3
    assert all(REGISTRY[i].kind == "distributed" for i in mutant.CAUGHT_BY), \
        f"{mutant.__name__}.CAUGHT_BY={mutant.CAUGHT_BY}, but should name distributed invariants"
    got = {name: p.default for name, p in inspect.signature(mutant).parameters.items()}
    assert got == BATCHNORM2D_SIGNATURE


@pytest.mark.parametrize("mutant, invariant_id", CAUGHT)
def test_mutant_is_caught(mutant, invariant_id):
    assert_caught(search(mutant, invariant_id), mutant, invariant_id)


def test_a_shrunk_failure_reproduces_from_its_printed_case():
    from hypothesis import Phase, settings
    error = search(NoAllReduceBackwardBatchNorm, "distributed-input-gradient",
                   settings(search_settings(), phases=tuple(Phase)))  # shrink too
    assert isinstance(error, InvariantViolation)
    printed = repr(error.reproduction)
    case = eval(printed, {"DistCase": DistCase, "Params": Params, "Problem": Problem,
                         "BNOptions": BNOptions})
    assert case == error.reproduction
    assert case.sizes and len(case.problem.shape) == 2, f"not shrunk: {printed}"
    subject = dist_subject(zoo.spec(NoAllReduceBackwardBatchNorm))
    with pytest.raises(InvariantViolation) as again:
        check_case(REGISTRY["distributed-input-gradient"], subject, case)
    assert str(again.value) == str(error)
    check_case(REGISTRY["distributed-input-gradient"], REFERENCE_DIST_SUBJECT, case)


@pytest.mark.parametrize("mutant", DIST_MUTANTS, ids=lambda m: m.__name__)
def test_a_mutant_fails_only_by_violations_never_by_the_harness(mutant):
    # a timeout, hang, RankError or crash of the harness would pass for a catch; the
    # invariants of CAUGHT_BY are held to an InvariantViolation by test_mutant_is_caught
    others = [i.id for i in REGISTRY.values()
              if i.kind == "distributed" and i.id not in mutant.CAUGHT_BY]
    found = {i: search(mutant, i, profile("ci", max_examples=6)) for i in others}
    harness = {i: repr(leaf)[:300] for i, e in found.items() if e is not None
               for leaf in leaves(e) if not isinstance(leaf, InvariantViolation)}
    assert not harness, f"{mutant.__name__}: failures of the harness={harness}, but should be none"
