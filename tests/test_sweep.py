"""The sweep mode checks every packed instance, and catches what it claims to."""
from benchmarks.sweep import check_round, packed_input
from bn_invariants.zoo.detached_mean import DetachedMeanBatchNorm
from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS, Subject

TORCH_1D = next(s for s in BUILTIN_SUBJECTS if s.name == "torch.nn.BatchNorm1d")


def test_packed_channels_are_distinct_instances():
    x = packed_input(16, 100, "float32", seed=0)
    means = x.mean(0).abs()
    assert means.max() / means.min() > 1e3, "offsets should span orders of magnitude"


def test_torch_passes_the_sweep():
    assert check_round(TORCH_1D, device="cpu", dtype="float32", batch=16, channels=500,
                       seed=0) == {"agrees-with-reference": 0, "input-gradient-sums-to-zero": 0}


def test_sweep_catches_the_naive_rule_in_most_instances():
    naive = Subject("naive", DetachedMeanBatchNorm)
    found = check_round(naive, device="cpu", dtype="float32", batch=16, channels=500, seed=0)
    assert found["agrees-with-reference"] == 0, "the naive forward pass is correct"
    assert found["input-gradient-sums-to-zero"] > 400
