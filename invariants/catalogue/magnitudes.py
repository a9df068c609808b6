"""Extreme magnitudes: correct outputs (or a clear error) across the dtype's whole range."""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from bn_invariants.strategies import streams
from bn_invariants.invariants.params import Extreme, drawn
from bn_invariants.invariants.assertions import assert_close
from bn_invariants.invariants.assertions import CLEAR_ERRORS, is_device_fault
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import Statistics, reduce_dims
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import output_tolerance
from bn_invariants.strategies import finfo, mantissa_bits

LOWEST_EXPONENT_FLOAT64 = -450
"""Channels scaled below 2^-450 keep that scale: ε·4^450 would overflow, and next to
it such a channel's variance is nothing anyway."""


def exponent_range(dtype: str, n: int) -> tuple[int, int]:
    """(lo, hi) of a channel's largest |x| = 2^e: from p bits above the smallest normal
    number (so the values are not subnormal) up to where the sum of n values and each
    difference still fit the dtype, 4 n max|x| <= max; far past where squares overflow."""
    info = finfo(dtype)
    lo = math.ceil(math.log2(info.tiny)) + mantissa_bits(dtype)
    hi = math.floor(math.log2(info.max / (4 * max(n, 1))))
    return lo, hi


def extreme_values(problem, position: float, spread: int) -> torch.Tensor:
    """Normal values, each channel scaled so its largest |x| is 2^e_c, rounded to the dtype:
    e_c = the point ``position`` of the way up ``exponent_range``, less a per-channel
    random 0..``spread``."""
    lo, hi = exponent_range(problem.dtype, problem.reduction_length)
    top = lo + round(position * (hi - lo))
    gen = problem.generator(streams.MAGNITUDES)
    z = torch.randn(problem.shape, generator=gen, dtype=torch.float64)
    dims = reduce_dims(len(problem.shape))
    z = z / z.abs().amax(dims, keepdim=True)
    drop = torch.randint(0, spread + 1, (problem.num_features,), generator=gen)
    exponents = (top - drop).clamp(min=lo).double().reshape((1, -1) + (1,) * (z.dim() - 2))
    return (z * 2.0 ** exponents).to(problem.torch_dtype).double()


def scaled_statistics(x: torch.Tensor, eps: float) -> Statistics:
    """Float64 statistics that neither overflow nor underflow: each channel is divided by
    2^k_c (k_c the exponent of its largest |x|, at least -450) and ε by 4^k_c, which
    leaves x̂ unchanged.  mean and std are returned in the scaled units (their ratio,
    all the tolerance needs, is unchanged); var likewise."""
    dims = reduce_dims(x.dim())
    largest = x.abs().amax(dims, keepdim=True)
    k = torch.where(largest > 0, torch.frexp(largest).exponent.double(), torch.zeros_like(largest))
    k = k.clamp(min=LOWEST_EXPONENT_FLOAT64)
    scaled = x * 2.0 ** -k
    mean = scaled.mean(dims, keepdim=True)
    var = ((scaled - mean) ** 2).mean(dims, keepdim=True)
    std = (var + eps * 4.0 ** -k).sqrt()
    n = x.numel() // max(x.shape[1], 1)
    return Statistics(mean, var, std, (scaled - mean) / std, n)


def check(subject, case, reference):
    p = case.problem
    x = extreme_values(p, case.params.position, case.params.spread)
    module = build(subject, p)
    try:
        y = module(p.input(x))
    except CLEAR_ERRORS as exc:
        if is_device_fault(exc):
            raise
        return
    stats = scaled_statistics(x, p.options.eps)
    gamma, beta = affine_of(module, x.dim())
    expected = stats.xhat if gamma is None else gamma * stats.xhat + beta
    tau = output_tolerance(p.dtype, stats, gamma, beta)
    log_largest = math.log2(float(x.abs().max()))
    assert_close("BN(x)", y, expected, tau,
                 f"{context(subject, p)}; max|x| = 2^{log_largest:.1f}, "
                 f"n max|x|^2 = 2^{math.log2(stats.n) + 2 * log_largest:.1f}")


EXTREME_MAGNITUDES = register(Invariant(
    id="extreme-magnitudes",
    title="Correct output (or a clear error) for magnitudes across the dtype's range",
    family="degenerate inputs",
    statement=(r"|x| \in [2^{e_{min}+p},\, \tfrac{\max}{4n}]:\; \mathrm{BN}(x) = "
               r"\gamma\hat x + \beta \text{ within } \tau^{out}, \text{ or an exception}"),
    why=("x̂ does not depend on the input's scale, so a batch norm can be exact at any scale "
         "the dtype holds: dividing by a power of two first, or a Welford-type update, keeps "
         "every intermediate in range. Summing squares naively overflows once n·x² passes "
         "the accumulation dtype's maximum (float32 and bfloat16 from |x| ≈ 2^64/√n, float64 "
         "from 2^512/√n) and then silently returns β (x̂ = 0), ±inf or NaN. Wrong values "
         "with no error are the failure; a ValueError or RuntimeError is accepted."),
    source="Higham (2002), section 27.5 (scaling to avoid overflow); Chan, Golub & LeVeque (1983)",
    applies=("training mode; each channel's largest |x| at 2^e, e anywhere from p bits above "
             "the smallest normal number to max/(4n), channels up to 2^spread apart; every "
             "rank, dtype, layout and option"),
    tolerance=("the output tolerance, with μ/s and x̂ from float64 statistics of the channel "
               "scaled by a power of two (so the oracle itself does not overflow)"),
    tolerance_formula=r"\tau_i = \tau^{out}_i \text{ (scale-free: } |\mu|/s,\ \hat x_i)",
    params=drawn(
        Extreme,
        position=st.integers(0, 32).map(lambda k: k / 32),
        spread=st.sampled_from((0, 4, 40)),
    ),
    check=check,
))
