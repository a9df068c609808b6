"""The strategies produce what they promise."""
import math

import pytest
import torch
from hypothesis import given, strategies as st

import bn_invariants.strategies as S
from bn_invariants.strategies.profiles import profile
from bn_invariants.strategies.shapes import LONG_REDUCTION
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.cases import add_per_channel, per_channel_offsets


@given(S.problems(dtype_ranks={"float64": (2,), "float16": (4, 5)}))
def test_problems_respect_dtype_ranks(problem):
    allowed = {"float64": (2,), "float16": (4, 5)}[problem.dtype]
    assert len(problem.shape) in allowed
    assert problem.input().dtype == problem.torch_dtype


@given(S.shapes(min_reduction=2))
def test_shapes_are_legal_for_training(shape):
    assert 2 <= len(shape) <= 5
    assert 1 <= shape[1]
    assert S.reduction_length(shape) >= 2


def test_shapes_shrink_to_the_smallest_legal_batch():
    from hypothesis import find
    assert find(S.shapes(ranks=(2,)), lambda s: True) == (2, 1)
    assert find(S.shapes(ranks=(4,)), lambda s: True) == (2, 1, 1, 1)
    assert find(S.shapes(ranks=(4,)), lambda s: s[2] * s[3] >= 2)[0] == 1


def test_shapes_reach_the_promised_extremes():
    seen = set()

    @profile("ci", max_examples=400)
    @given(S.shapes())
    def collect(shape):
        seen.add(("channels>64", shape[1] > 64))
        seen.add(("spatial 1", 1 in shape[2:]))
        seen.add(("long", S.reduction_length(shape) >= LONG_REDUCTION))

    collect()
    for fact in ("channels>64", "spatial 1", "long"):
        assert (fact, True) in seen, f"no shape with {fact} in 400 draws"



@given(S.problems())
def test_input_is_reproducible_from_repr(problem):
    rebuilt = eval(repr(problem), {"Problem": S.Problem, "BNOptions": S.BNOptions})
    assert torch.equal(rebuilt.input().cpu(), problem.input().cpu())


@pytest.mark.parametrize("layout", S.LAYOUTS)
def test_layouts_keep_values_and_change_strides(layout):
    x = torch.randn(2, 3, 4, 5)
    y = S.apply_layout(x, layout)
    assert torch.equal(x, y)
    if layout == "contiguous":
        assert y.is_contiguous()
    elif layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    elif layout == "strided":
        assert not y.is_contiguous()
    else:
        assert y.storage_offset() > 0


def test_unknown_names_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match="layout='diagonal', but should be one of"):
        S.apply_layout(torch.ones(2, 2), "diagonal")
    with pytest.raises(ValueError, match="dtype='float8'"):
        S.torch_dtype("float8")


def _problem(regime, severity, dtype="float32", shape=(16, 6)):
    return S.Problem(shape=shape, dtype=dtype, regime=regime, severity=severity, seed=3)


def test_offset_regime_reaches_the_dtype_limit():
    p = _problem("offset", 1.0)
    st_ = statistics(p.values, 0.0)
    ratio = (st_.mean.abs() / st_.var.sqrt()).min().item()
    limit = S.max_offset_ratio("float32", p.reduction_length)
    assert limit / 4 <= ratio <= 4 * limit


def test_tiny_variance_regime_is_far_below_eps():
    p = _problem("tiny_variance", 1.0, dtype="float64")
    assert statistics(p.values, 0.0).var.max().item() < 1e-5 * 1e-6


def test_constant_channels_regime_has_zero_variance_channels():
    p = _problem("constant_channels", 1.0)
    assert (statistics(p.values, 0.0).var.flatten() == 0).all()


def test_heavy_tails_regime_has_outliers():
    p = _problem("heavy_tails", 1.0, shape=(64, 4, 8))
    assert p.values.abs().max().item() > 1e3


def test_mixed_scales_regime_spreads_channel_scales():
    p = _problem("mixed_scales", 1.0, shape=(32, 16))
    std = statistics(p.values, 0.0).var.sqrt().flatten()
    assert (std.max() / std.min()).item() > 1e3


@pytest.mark.parametrize("dtype", S.DTYPE_NAMES)
def test_magnitude_regime_stays_finite_when_squared_and_summed(dtype):
    for seed in range(8):
        p = S.Problem(shape=(16, 3), dtype=dtype, regime="magnitude", severity=1.0, seed=seed)
        x = p.values
        assert torch.isfinite(x).all()
        total = (x * x).sum(0).max().item()
        assert total < S.finfo(dtype).max


def test_affine_parameters_are_away_from_identity():
    w, b = S.Problem(shape=(4, 64)).affine()
    assert ((w.abs() >= 0.5) & (w.abs() <= 2)).all()
    assert (w != 1).all() and (b != 0).all()
    assert (w < 0).any(), "gamma is drawn with both signs"


@given(S.problems(), st.integers(0, 16), st.sampled_from(S.DTYPE_NAMES))
def test_exact_shift_grid_makes_the_sum_exact(problem, strength, dtype):
    p = S.Problem(shape=problem.shape, dtype=dtype, regime=problem.regime,
                  severity=problem.severity, seed=problem.seed)
    x = p.values
    b = per_channel_offsets(p, statistics(x, 1e-5).std, strength / 16, stream=3)
    h = S.exact_shift_grid(x, b, dtype)
    xg, bg = (x / h).round() * h, (b / h).round() * h
    exact = add_per_channel(xg, bg)
    assert torch.equal(xg.to(p.torch_dtype).double(), xg)
    assert torch.equal(bg.to(p.torch_dtype).double(), bg)
    assert torch.equal(exact.to(p.torch_dtype).double(), exact)
    assert math.log2(h) == int(math.log2(h))


def test_input_never_aliases_the_cached_values():
    p = S.Problem(shape=(4, 2), dtype="float64")
    x = p.input()
    x.add_(1.0)
    assert not torch.equal(x, p.values)
    assert torch.equal(p.input(), p.values)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("shape", [(2, 1), (2, 3, 1, 1), (100000, 1)])
def test_the_offset_regime_stays_inside_the_dtype(dtype, shape):
    """Found by a soak: with the statistics' ratio 1.3e5 at n = 2, float16 offset values
    at severity 1 were [-inf, -inf]."""
    for seed in range(4):
        values = S.Problem(shape, dtype, regime="offset", severity=1.0, seed=seed).values
        assert bool(torch.isfinite(values).all()), (seed, values.flatten()[:4])
