"""Detection power (issue 10): each measurement of the review, as a regression test that
fails on the old bounds or cotangents and passes now."""
import pytest
import torch

from bn_invariants import zoo
from bn_invariants.invariants import REGISTRY, InvariantViolation
from bn_invariants.invariants.registry import Case
from bn_invariants.invariants.runner import check_case
from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS, Subject
from bn_invariants.strategies import Problem

TORCH_1D = next(s for s in BUILTIN_SUBJECTS if s.name == "torch.nn.BatchNorm1d")
DETACHED_MEAN = Subject("DetachedMean", zoo.DetachedMeanBatchNorm)
DETACHED_VARIANCE = Subject("DetachedVariance", zoo.DetachedVarianceBatchNorm)


def caught(subject, invariant_id, problem, params=None) -> bool:
    try:
        check_case(REGISTRY[invariant_id], subject, Case(problem, params or {}))
    except InvariantViolation:
        return True
    return False


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("subject, invariant_id", [
    (DETACHED_MEAN, "input-gradient-sums-to-zero"), (DETACHED_MEAN, "zero-bias-gradient"),
    (DETACHED_MEAN, "input-gradient-closed-form"),
    (DETACHED_VARIANCE, "input-gradient-sums-to-zero"),
    (DETACHED_VARIANCE, "input-gradient-closed-form")], ids=str)
def test_an_informative_cotangent_catches_the_naive_rules_at_long_reductions(
        subject, invariant_id, dtype):
    """Measured: 0 of 3 dtypes caught at (100000, 2) with g standard normal (signal 0.14 to
    0.22 of the bound); g = a_c + b_c x̂ + noise gives a signal that grows like n."""
    informative = Problem((100000, 2), dtype, seed=1, cotangent_regime="informative")
    params = {"bias": 0.0} if invariant_id == "zero-bias-gradient" else {}
    assert caught(subject, invariant_id, informative, params)
    assert not caught(TORCH_1D, invariant_id, informative, params)


@pytest.mark.parametrize("dtype, lr", [("bfloat16", 1.0), ("float16", 10.0)])
@pytest.mark.parametrize("steps", [2, 4])
def test_a_drifting_bias_is_caught_at_every_step_count(dtype, lr, steps):
    """Measured: the detached mean at (8, 2, 5, 5, 5) was caught 4/4 with one step and 0/4
    with two or more (each step's bound came from the subject's own x + b_t, summed)."""
    found = [caught(DETACHED_MEAN, "no-bias-drift", Problem((8, 2, 5, 5, 5), dtype, seed=seed),
                    {"steps": steps, "lr": lr}) for seed in range(4)]
    assert all(found), found


def test_torch_does_not_drift_where_a_bias_step_rounds_the_input_coarsely():
    """A false alarm of holding every step to x + b_0's bound: in bfloat16 at n = 2, b_1
    (within its bound) rounds x + b_1 so coarsely that step 2's exact gradient bound is
    that of another input; each step is held to the input it saw."""
    problem = Problem((2, 43), "bfloat16", seed=1427, cotangent_regime="heavy_tailed")
    assert not caught(TORCH_1D, "no-bias-drift", problem, {"steps": 2, "lr": 0.1})


def test_the_gradient_sum_bound_does_not_hide_a_detached_mean_behind_the_offset():
    """Measured: the detached mean at n = 1000, float32, offset regime was at 0.55 of the
    bound (1 + |μ|/s multiplied the whole mass); with the factor on the c̄ term alone it is
    caught, and torch stays inside."""
    problem = Problem((1000, 2), "float32", regime="offset", severity=1.0, seed=0)
    assert caught(DETACHED_MEAN, "input-gradient-sums-to-zero", problem)
    assert not caught(TORCH_1D, "input-gradient-sums-to-zero", problem)


class AllNaNBatchNorm(zoo.ZooBatchNorm):
    """Every output NaN: it passed four metamorphic invariants when NaN agreed with NaN."""

    def forward(self, x):
        return super().forward(x) * float("nan")


@pytest.mark.parametrize("invariant_id, params", [
    ("shift-invariance", {"shift": 0.5, "exact": False}), ("scale-invariance-positive", {"mantissa": 3, "exponent": 1}),
    ("layout-independence", {}), ("deterministic-forward", {})])
def test_an_all_nan_batch_norm_breaks_the_metamorphic_invariants(invariant_id, params):
    layout = "strided" if invariant_id == "layout-independence" else "contiguous"
    problem = Problem((8, 3), "float32", layout=layout, seed=0)
    assert caught(Subject("AllNaN", AllNaNBatchNorm), invariant_id, problem, params)


def test_a_constructed_side_outside_the_dtype_is_rejected_not_blamed():
    """Dev-profile false alarm: scale-invariance-positive on torch's functional batch norm,
    float16 (2, 1, 1, 1), constant channels, eps = 1e-7: BN(x; eps/a²) was NaN (1/√(eps/a²)
    passes float16's range) and was reported as torch's violation."""
    from hypothesis.errors import UnsatisfiedAssumption
    functional = next(s for s in BUILTIN_SUBJECTS if s.name == "torch.nn.functional.batch_norm")
    from bn_invariants.strategies import BNOptions
    problem = Problem((2, 1, 1, 1), "float16", regime="constant_channels", seed=0,
                      options=BNOptions(eps=1e-7))
    with pytest.raises(UnsatisfiedAssumption):
        check_case(REGISTRY["scale-invariance-positive"], functional,
                   Case(problem, {"mantissa": 32, "exponent": 4}))
