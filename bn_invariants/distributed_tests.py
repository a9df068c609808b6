"""The distributed tests the plugin adds: every distributed invariant x distributed
subject, each example run on W worker processes (no deadline: the first example of each
W starts its pool)."""
import pytest
from hypothesis import given, settings, strategies as st

from bn_invariants.distributed import distributed_examples


@pytest.mark.bn_invariants
@settings(max_examples=distributed_examples(), deadline=None)
@given(data=st.data())
def test_distributed_invariant(dist_target, data):
    case = data.draw(dist_target.cases(), label="case")
    dist_target.check(case)
