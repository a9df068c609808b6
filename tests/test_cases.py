"""Cases are typed, checks have one signature, preconditions are written once: every
invariant's check is check(subject, case, reference), its cases carry params of the type
it declares and meet every precondition its ``applies`` names, and a printed case is
Python that rebuilds it."""
import inspect

import pytest
from hypothesis import HealthCheck, find
from hypothesis.errors import NoSuchExample

import bn_invariants.invariants as invariants
import bn_invariants.strategies as strategies
from bn_invariants.invariants import REGISTRY, Case, Params, Space
from bn_invariants.invariants.distributed.subjects import DistSpace
from bn_invariants.strategies import DTYPE_NAMES, RANKS
from bn_invariants.strategies.profiles import profile

QUICK = profile("ci", max_examples=20, suppress_health_check=list(HealthCheck))


def space_of(invariant) -> Space:
    """Everything the invariant applies to, on its first device."""
    device = invariant.devices[0] if invariant.devices else "cpu"
    everything = {d: RANKS for d in DTYPE_NAMES}
    space = DistSpace(device, everything) if invariant.kind == "distributed" else Space(device, everything)
    return invariant.space_for(space)


def first_case(invariant) -> Case:
    return find(invariant.draw(space_of(invariant)), lambda case: True, settings=QUICK)


@pytest.mark.parametrize("invariant", REGISTRY.values(), ids=lambda i: i.id)
def test_every_check_takes_subject_case_and_reference(invariant):
    assert list(inspect.signature(invariant.check).parameters) == ["subject", "case", "reference"]


@pytest.mark.parametrize("invariant", REGISTRY.values(), ids=lambda i: i.id)
def test_a_drawn_case_carries_the_declared_params_and_its_repr_pastes_back(invariant):
    case = first_case(invariant)
    assert type(case.params) is invariant.params.kind, (
        f"{invariant.id}: params={type(case.params).__name__}, but should be "
        f"{invariant.params.kind.__name__}, the type it declares")
    namespace = {**{n: getattr(invariants, n) for n in invariants.__all__},
                 **{n: getattr(strategies, n) for n in strategies.__all__}}
    assert eval(repr(case), namespace) == case


PRECONDITIONED = [i for i in REGISTRY.values() if i.preconditions]


@pytest.mark.parametrize("invariant", PRECONDITIONED, ids=lambda i: i.id)
def test_every_drawn_case_meets_the_preconditions_the_catalogue_names(invariant):
    def breaks_one(case):
        return not all(condition.holds(case) for condition in invariant.preconditions)

    with pytest.raises(NoSuchExample):
        found = find(invariant.draw(space_of(invariant)), breaks_one, settings=QUICK)
        pytest.fail(f"{invariant.id} drew {found!r}, which breaks "
                    f"{[c.text for c in invariant.preconditions if not c.holds(found)]}")


def test_a_precondition_that_narrows_nothing_filters_the_draw():
    batch = REGISTRY["batch-permutation-equivariance"]
    assert [c.narrows for c in batch.preconditions] == [False]
    assert find(batch.draw(space_of(batch)), lambda case: True, settings=QUICK).problem.shape[0] >= 2


def test_every_kind_of_params_is_exported():
    """A printed case names its params' type: ``from bn_invariants.invariants import *``
    must bring every kind into scope."""
    kinds = {Params, *Params.__subclasses__()}
    assert {k.__name__ for k in kinds} <= set(invariants.__all__)
