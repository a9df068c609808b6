"""A hand-written torch.autograd.Function (found by a new user's run): its second
derivative is silently zero, and gradgradcheck says why and what to do."""
import pytest

from bn_invariants.invariants import REGISTRY, Case, InvariantViolation, Unsupported, load_subject
from bn_invariants.invariants.runner import check_case
from bn_invariants.strategies import Problem

CASE = Case(Problem((4, 2), "float64"))


def test_a_zero_second_derivative_names_its_usual_cause():
    with pytest.raises(InvariantViolation) as caught:
        check_case(REGISTRY["gradgradcheck"],
                   load_subject("tests.fixtures.custom_function:FunctionBatchNorm"), CASE)
    assert "@once_differentiable" in str(caught.value)


def test_the_first_derivative_of_the_same_function_passes():
    check_case(REGISTRY["gradcheck"],
               load_subject("tests.fixtures.custom_function:FunctionBatchNorm"), CASE)


def test_a_backward_marked_once_differentiable_is_declined_not_failed():
    with pytest.raises(Unsupported):
        check_case(REGISTRY["gradgradcheck"],
                   load_subject("tests.fixtures.custom_function:OnceDifferentiableBatchNorm"), CASE)
