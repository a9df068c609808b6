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
