"""Degenerate inputs in training mode: constant channels, one value per channel, no values."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from bn_invariants.strategies import streams
from bn_invariants.invariants.assertions import CLEAR_ERRORS, is_device_fault
from bn_invariants.invariants.step import buffers
from bn_invariants.invariants.assertions import assert_close, assert_finite, assert_true
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import reduce_dims, statistics
from bn_invariants.invariants.cases import Case
from bn_invariants.invariants.preconditions import regime_in
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import output_tolerance
from bn_invariants.strategies import DTYPE_NAMES, LAYOUTS, REGIMES, Problem, bn_options, layouts, regimes



@st.composite
def special_problems(draw, space, make_shape, regimes_allowed=tuple(REGIMES)):
    """A Problem in ``space`` whose shape is ``make_shape(rank, channels)`` (a strategy):
    the shapes ``problems()`` never draws (one value per channel, no values)."""
    dtype = draw(st.sampled_from([d for d in DTYPE_NAMES if space.dtype_ranks.get(d)]),
                 label="dtype")
    rank = draw(st.sampled_from(tuple(space.dtype_ranks[dtype])), label="rank")
    shape = draw(make_shape(rank, draw(st.integers(1, 16), label="channels")), label="shape")
    return Problem(shape=shape, dtype=dtype, device=space.device,
                   layout=draw(layouts(allowed=LAYOUTS), label="layout"),
                   regime=draw(regimes(allowed=regimes_allowed), label="regime"),
                   severity=draw(st.integers(0, 16), label="severity") / 16,
                   seed=draw(st.integers(0, 2**32 - 1), label="seed"),
                   options=draw(bn_options(), label="options"))


def single_value_shape(rank, channels):
    """(1, C, 1, ..., 1): one value per channel."""
    return st.just((1, channels) + (1,) * (rank - 2))


def empty_shape(rank, channels):
    """No values per channel: N = 0, or (rank > 2) one spatial side 0."""
    sides = st.lists(st.integers(1, 3), min_size=rank - 2, max_size=rank - 2)
    batch_zero = st.tuples(st.just(0), st.just(channels)).flatmap(
        lambda head: sides.map(lambda s: head + tuple(s)))
    if rank == 2:
        return batch_zero
    side_zero = st.tuples(st.integers(1, 3), sides, st.integers(0, rank - 3)).map(
        lambda t: (t[0], channels) + tuple(0 if i == t[2] else v for i, v in enumerate(t[1])))
    return batch_zero | side_zero




def seed_buffers(module, problem) -> None:
    """Running statistics away from their defaults (0 and 1), so that any write shows."""
    gen = problem.generator(streams.SEEDED_BUFFERS)
    with torch.no_grad():
        for name, low in (("running_mean", -1.0), ("running_var", 0.5)):
            buf = getattr(module, name, None)
            if isinstance(buf, torch.Tensor):
                fresh = low + torch.rand(buf.shape, generator=gen, dtype=torch.float64)
                buf.copy_(fresh.to(buf.dtype))


def assert_statistics_untouched(before, module, ctx) -> None:
    """running_mean and running_var still hold exactly what they held before."""
    __tracebackhide__ = True
    for name in ("running_mean", "running_var"):
        if name in before:
            assert_close(name, getattr(module, name), before[name], 0.0,
                         f"{ctx}; no values to update it with")


# --- constant-channel-finite ----------------------------------------------------------

def check_constant(subject, case, reference):
    p = case.problem
    module = build(subject, p)
    y = module(p.input())
    ctx = context(subject, p)
    assert_finite("BN(x)", y, ctx)
    stats = statistics(p.values, p.options.eps)
    gamma, beta = affine_of(module, p.values.dim())
    g = 1.0 if gamma is None else gamma.abs()
    b = torch.zeros_like(stats.mean) if beta is None else beta
    spread = stats.xhat.abs().amax(reduce_dims(p.values.dim()), keepdim=True)
    tau = output_tolerance(p.dtype, stats, gamma, beta)
    y64 = y.detach().to("cpu", torch.float64)
    assert_close("BN(x) - beta", y64 - b, torch.zeros_like(y64), g * spread + tau, ctx)


CONSTANT_CHANNEL_FINITE = register(Invariant(
    id="constant-channel-finite",
    title="Constant and near-constant channels give finite outputs near β",
    family="degenerate inputs",
    statement=(r"\sigma_c^2 \ll \varepsilon:\; y_i \text{ finite and } |y_i - \beta_c| \le "
               r"|\gamma_c|\,\frac{\max_{j\in c}|x_j-\mu_c|}{\sqrt{\sigma_c^2+\varepsilon}}"),
    why=("ε exists so that a channel with (almost) no spread is divided by √ε, not by 0: "
         "its output is β plus something no larger than the spread over √(σ²+ε). A subject "
         "that drops ε, or computes σ² as E[x²] − E[x]² and gets it negative, returns NaN or "
         "huge values here. (A per-element bound of |γ|σ/√(σ²+ε) would be wrong: one value "
         "may lie up to √(n−1) σ from the mean.)"),
    source="Ioffe & Szegedy (2015), Algorithm 1 (ε for numerical stability)",
    applies=("training mode",
             regime_in(("constant_channels", "tiny_variance"),
                       "the constant_channels and tiny_variance regimes (standard deviations "
                       "from 1e-3 down to 1e-7, and exactly constant channels)"),
             "every rank, dtype, layout and option"),
    tolerance="the output tolerance, on top of the exact bound |γ| max|x − μ|/√(σ²+ε)",
    tolerance_formula=(r"|y_i-\beta_c| \le |\gamma_c|\max_{j\in c}|\hat x_j| + \tau^{out}_i"),
    check=check_constant,
))


# --- one-value-per-channel ------------------------------------------------------------

def forward_on_seeded_buffers(subject, problem):
    """(y, module, buffers before, context) of one training forward from drawn running
    statistics; y is None when the subject raised a clear error, after which the
    running statistics must be untouched."""
    module = build(subject, problem)
    seed_buffers(module, problem)
    before = buffers(module)
    ctx = context(subject, problem)
    try:
        return module(problem.input()), module, before, ctx
    except CLEAR_ERRORS as exc:
        if is_device_fault(exc):
            raise
        assert_statistics_untouched(before, module, ctx)
        return None, module, before, ctx


def check_single_value(subject, case, reference):
    y, module, _, ctx = forward_on_seeded_buffers(subject, case.problem)
    if y is None:
        return
    ctx = f"{ctx}; one value per channel, training mode, no error raised"
    assert_finite("BN(x)", y, ctx)
    for name, value in buffers(module).items():
        if value.is_floating_point():
            assert_finite(name, value, ctx)


ONE_VALUE_PER_CHANNEL = register(Invariant(
    id="one-value-per-channel",
    title="One value per channel: a clear error, or no NaN or infinity anywhere",
    family="degenerate inputs",
    statement=(r"n = N\prod_k S_k = 1 \;\Rightarrow\; 	ext{training forward raises, or } "
               r"\mathrm{BN}(x), \hat\mu, \hat\sigma^2 	ext{ are all finite}"),
    why=("With one value per channel the batch variance is 0 and x̂ is 0 for every input, "
         "and the unbiased variance for the running estimate divides by n − 1 = 0. torch "
         "raises ValueError ('Expected more than 1 value per channel when training'); other "
         "frameworks return β. Either is a design choice. What no design allows is a NaN or "
         "an infinity leaking into the output or into the running statistics, which then "
         "poisons every later evaluation; after a raised error the running statistics must "
         "be untouched."),
    source="torch.nn.functional.batch_norm (_verify_batch_size); Ioffe & Szegedy (2015), Algorithm 2",
    applies="training mode; shape (1, C) or (1, C, 1, ..., 1); every rank, dtype, layout, regime and option",
    tolerance=("none: a clear error (ValueError, RuntimeError or an ArithmeticError) leaves "
               "running_mean and running_var bitwise unchanged; otherwise every element of the "
               "output and of the running buffers is finite"),
    tolerance_formula=r"\tau = 0",
    cases=lambda space, params: st.builds(Case, problem=special_problems(space, single_value_shape)),
    check=check_single_value,
    long_reductions=False,
))


# --- empty-batch ----------------------------------------------------------------------

def check_empty(subject, case, reference):
    p = case.problem
    y, module, before, ctx = forward_on_seeded_buffers(subject, p)
    if y is None:
        return
    assert_true("BN(x).shape", tuple(y.shape) == tuple(p.shape), tuple(y.shape), tuple(p.shape), ctx)
    assert_true("BN(x).dtype", y.dtype == p.torch_dtype, y.dtype, p.torch_dtype, ctx)
    assert_statistics_untouched(before, module, ctx)
    if "num_batches_tracked" in before:
        count, was = int(module.num_batches_tracked), int(before["num_batches_tracked"])
        assert_true("num_batches_tracked", count in (was, was + 1), count,
                    f"{was} or {was + 1}", ctx)


EMPTY_BATCH = register(Invariant(
    id="empty-batch",
    title="No values per channel: an empty output, running statistics untouched",
    family="degenerate inputs",
    statement=(r"n = 0:\; \mathrm{BN}(x) \text{ has } x\text{'s shape and dtype, and "
               r"running\_mean, running\_var are unchanged (or a clear error)}"),
    why=("An empty batch (N = 0, as the last batch of a filtered data set can be) has no "
         "statistics: its mean is 0/0. torch returns an empty output and leaves the running "
         "statistics alone; a subject that folds a NaN mean into running_mean silently "
         "poisons every later evaluation. Raising ValueError or RuntimeError is accepted as a "
         "clear refusal (the float64 reference model does). torch counts the call in "
         "num_batches_tracked, so that counter may be unchanged or advance by one."),
    source="torch.nn.BatchNorm2d behaviour on empty input (torch 2.x); Ioffe & Szegedy (2015), Algorithm 2",
    applies=("training mode; N = 0, or a spatial side 0; running statistics seeded away from "
             "(0, 1); every rank, dtype, layout and option"),
    tolerance="none: shapes, dtypes and the running statistics are compared exactly",
    tolerance_formula=r"\tau = 0",
    cases=lambda space, params: st.builds(Case, problem=special_problems(space, empty_shape, ("unit",))),
    check=check_empty,
    long_reductions=False,
))
