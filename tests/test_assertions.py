"""The assertion helpers report what they should."""
import pytest
import torch

from bn_invariants.invariants.assertions import InvariantViolation, assert_close, assert_finite, assert_true


def test_close_values_pass():
    assert_close("y", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-9]), 1e-6)


def test_message_names_the_worst_element_got_expected_and_tolerance():
    got = torch.tensor([[1.0, 2.0], [3.0, 4.5]])
    expected = torch.tensor([[1.0, 2.1], [3.0, 4.0]])
    with pytest.raises(InvariantViolation) as info:
        assert_close("BN(x)", got, expected, 0.2, "ctx here")
    message = str(info.value)
    assert message.startswith("BN(x)[1, 1]=4.5, but should be 4.0 ± 0.2")
    assert "2.5× the tolerance" in message
    assert "1 of 4 elements out" in message
    assert message.endswith("[ctx here]")


def test_elementwise_tolerance_is_respected():
    got, expected = torch.tensor([0.0, 0.0]), torch.tensor([0.5, 0.05])
    assert_close("y", got, expected, torch.tensor([1.0, 0.1]))
    with pytest.raises(InvariantViolation, match=r"y\[1\]"):
        assert_close("y", got, expected, torch.tensor([1.0, 0.01]))


def test_nan_never_agrees_with_nan_unless_the_invariant_says_why():
    nan, inf = float("nan"), float("inf")
    with pytest.raises(InvariantViolation, match=r"y\[0\]=nan, but should be finite"):
        assert_close("y", torch.tensor([nan]), torch.tensor([nan]), 0.0)
    with pytest.raises(InvariantViolation, match=r"y\[0\]=inf, but should be finite"):
        assert_close("y", torch.tensor([inf]), torch.tensor([inf]), 0.0)
    assert_close("y", torch.tensor([nan]), torch.tensor([nan]), 0.0, nan_ok="0/0 by definition")
    with pytest.raises(InvariantViolation, match=r"y\[0\]=nan"):
        assert_close("y", torch.tensor([nan]), torch.tensor([0.0]), 1.0)


def test_a_nan_tolerance_is_a_bug_in_the_suite():
    from bn_invariants.invariants.assertions import SuiteError
    with pytest.raises(SuiteError, match="a bug in the suite"):
        assert_close("y", torch.tensor([1.0]), torch.tensor([1.0]), float("nan"))
    assert not issubclass(SuiteError, InvariantViolation)


def test_infinity_fails_against_finite():
    with pytest.raises(InvariantViolation, match=r"y\[0\]=inf"):
        assert_close("y", torch.tensor([float("inf")]), torch.tensor([1.0]), 1e30)


def test_shape_mismatch_is_reported():
    with pytest.raises(InvariantViolation, match=r"has shape \(2,\), but should have shape \(3,\)"):
        assert_close("y", torch.zeros(2), torch.zeros(3), 1.0)


def test_compares_in_float64_across_dtypes():
    with pytest.raises(InvariantViolation):
        assert_close("y", torch.tensor([1.0], dtype=torch.float16),
                     torch.tensor([1.0 + 2**-9], dtype=torch.float64), 2**-12)


def test_assert_finite_locates_the_first_bad_element():
    with pytest.raises(InvariantViolation, match=r"y\[0, 1\]=nan, but should be finite"):
        assert_finite("y", torch.tensor([[1.0, float("nan")]]))
    assert_finite("y", torch.ones(3))


def test_assert_true_speaks_the_same_format():
    with pytest.raises(InvariantViolation, match=r"^count=3, but should be 4 \[c\]$"):
        assert_true("count", False, 3, 4, "c")
    assert_true("count", True, 4, 4)


def test_helpers_hide_their_own_frames():
    for helper in (assert_close, assert_finite, assert_true):
        assert "__tracebackhide__" in helper.__code__.co_varnames


def test_an_overflow_is_within_a_bound_that_passes_the_dtypes_range():
    inf = torch.tensor([float("inf")])
    assert_close("s", inf, torch.zeros(1), 1e6, overflow=65504.0)
    with pytest.raises(InvariantViolation):
        assert_close("s", inf, torch.zeros(1), 10.0, overflow=65504.0)
    with pytest.raises(InvariantViolation):
        assert_close("s", inf, torch.zeros(1), 1e6)  # no dtype range given: inf fails
    with pytest.raises(InvariantViolation):
        assert_close("s", torch.tensor([float("nan")]), torch.zeros(1), 1e6, overflow=65504.0)


def test_an_overflow_keeps_the_sign_of_what_it_rounds():
    """-inf rounds -73146 (a float16 weight gradient past the range); +inf rounds
    nothing within 3.3e4 of it."""
    exact = torch.tensor([-73146.0])
    assert_close("s", torch.tensor([-float("inf")]), exact, 3.3e4, overflow=65504.0)
    with pytest.raises(InvariantViolation):
        assert_close("s", torch.tensor([float("inf")]), exact, 3.3e4, overflow=65504.0)
