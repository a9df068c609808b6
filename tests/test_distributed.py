"""Every distributed invariant against every distributed subject, on W worker processes."""
from hypothesis import given, settings, strategies as st

from tests.plugins.distributed import distributed_examples


@settings(max_examples=distributed_examples())
@given(data=st.data())
def test_distributed_invariant(dist_target, data):
    case = data.draw(dist_target.cases(), label="case")
    dist_target.check(case)
