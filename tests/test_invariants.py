"""Every registered invariant, against every subject, on every device."""
import pytest
from hypothesis import given, strategies as st

from invariants import Unsupported


@given(data=st.data())
def test_invariant(target, data):
    case = data.draw(target.cases(), label="case")
    try:
        target.check(case)
    except Unsupported as exc:
        pytest.skip(f"{target.subject} declines: {exc}")
