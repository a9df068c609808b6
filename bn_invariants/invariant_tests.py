"""The invariant tests the plugin adds: every invariant x subject x device, and the
contracts (batch normalisation at all, construction, output per rank) per subject x device."""
import pytest
from hypothesis import given, strategies as st
from hypothesis.errors import HypothesisException

from bn_invariants.invariants import InvariantViolation, Unsupported
from bn_invariants.invariants.assertions import is_device_fault
from bn_invariants.invariants.blame import raised_by_suite
from bn_invariants.invariants.capabilities import declined_option


@pytest.mark.bn_invariants
@given(data=st.data())
def test_invariant(target, data):
    check(target, data.draw(target.cases(), label="case"))


def check(target, case) -> None:
    """Check one case: a violation fails; an operation or option the subject declines
    skips; any other exception of the subject's is recorded (one line in the report) and
    the checking goes on."""
    try:
        target.check(case)
    except Unsupported as exc:
        pytest.skip(f"{target.subject} declines: {exc}")
    except (InvariantViolation, HypothesisException):
        raise
    except Exception as exc:
        if raised_by_suite(exc) or is_device_fault(exc):
            raise
        declined = declined_option(exc)
        if declined:  # the invariant builds the subject with an option it does not offer
            pytest.skip(f"{target.subject} declines what {target.invariant.id} needs: {declined}")
        target.record(exc, case)  # one line in the report; the search goes on


@pytest.mark.bn_invariants
def test_contract(contract):
    name, subject, _device, message = contract
    if message:
        pytest.fail(f"{name} fails for {subject}: {message}", pytrace=False)


@pytest.mark.bn_invariants
def test_invariant_long_reduction(target):
    """Every run reaches a long reduction (4096 values per channel) in bfloat16 and in
    float32 (where the target takes them): the split and chunked reductions real kernels
    switch to, and their half-precision paths, whatever the profile draws."""
    cases = target.long_cases()
    if not cases:
        pytest.skip(f"{target.invariant.id}'s cases are never long reductions")
    for case in cases:
        check(target, case)
