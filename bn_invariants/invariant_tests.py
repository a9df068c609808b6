"""The invariant tests the plugin adds: every invariant x subject x device."""
import pytest
from hypothesis import given, strategies as st

from bn_invariants.invariants import Unsupported


@pytest.mark.bn_invariants
@given(data=st.data())
def test_invariant(target, data):
    case = data.draw(target.cases(), label="case")
    try:
        target.check(case)
    except Unsupported as exc:
        pytest.skip(f"{target.subject} declines: {exc}")


@pytest.mark.bn_invariants
def test_invariant_long_reduction(target):
    """Every run reaches a long reduction (4096 values per channel) in bfloat16 and in
    float32 (where the target takes them): the split and chunked reductions real kernels
    switch to, and their half-precision paths, whatever the profile draws."""
    cases = target.long_cases()
    if not cases:
        pytest.skip(f"{target.invariant.id}'s cases are never long reductions")
    for case in cases:
        try:
            target.check(case)
        except Unsupported as exc:
            pytest.skip(f"{target.subject} declines: {exc}")
