"""Scale invariance in training mode: BN(a x; ε) = sign(a) BN(x; ε/a²)."""
from __future__ import annotations

import math
from dataclasses import replace

import torch
from hypothesis import strategies as st

from bn_invariants.invariants.params import PositiveScale, PowerOfTwo, drawn
from bn_invariants.invariants.bounds import tex
from bn_invariants.invariants.assertions import assert_close, assert_finite_where, finite_baseline
from bn_invariants.invariants.assertions import assert_identical
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import exact_output, reduce_dims, statistics
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import output_tolerance, shifted_input_rounding
from bn_invariants.strategies import accumulation_dtype, finfo, unit_roundoff


def exponent_window(values: torch.Tensor, dtype: str) -> tuple[int, int]:
    """(lo, hi): the k for which every channel's largest |2^k x| stays in the safe band.

    Upper end: differences fit the dtype (4 max|x| <= max) and n squares summed in
    the accumulation dtype do not overflow (16 n max|x|^2 <= max_acc).  Lower end:
    squares of centred values, down to (u_acc max|x|)^2, stay normal in the
    accumulation dtype (16 sqrt(tiny_acc) / u_acc <= max|x|).  Inside the band no
    intermediate of the batch norm overflows or underflows, so scaling by 2^k
    commutes with every rounding.  lo > hi (empty) when the channels' scales differ
    too much or a value is not finite."""
    acc = accumulation_dtype(dtype)
    n = values.numel() // max(values.shape[1], 1)
    upper = min(finfo(dtype).max / 4, math.sqrt(finfo(acc).max / (16 * n)))
    lower = 16 * math.sqrt(finfo(acc).tiny) / unit_roundoff(acc)
    per_channel = values.abs().amax(reduce_dims(values.dim())).flatten()
    nonzero = per_channel[per_channel > 0]
    if nonzero.numel() == 0:
        return -8, 8
    if not bool(torch.isfinite(nonzero).all()):
        return 1, 0
    return (math.ceil(math.log2(lower) - math.log2(float(nonzero.min()))),
            math.floor(math.log2(upper) - math.log2(float(nonzero.max()))))


def exact_in(values: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether every float64 value is representable in ``dtype``."""
    return bool(torch.equal(values.to(dtype).double(), values))


def scaling_is_exact(problem, x: torch.Tensor, k: int) -> bool:
    """Whether BN(2^k x; eps) and BN(x; eps/4^k) run through the same computation scaled
    by powers of two, with no intermediate leaving the normal range: x and 2^k x exact in
    the dtype, both inside ``exponent_window``, and each channel's mean and 1/sqrt(var+eps)
    normal in the input dtype too (torch rounds them to it for half types) on both sides."""
    d, eps = problem.torch_dtype, problem.options.eps
    lo, hi = exponent_window(x, problem.dtype)
    if not (lo <= min(0, k) and max(0, k) <= hi and exact_in(x, d)
            and exact_in(x * 2.0 ** k, d)):
        return False
    info = finfo(problem.dtype)
    stats = statistics(x, eps / 4.0 ** k)
    mean = stats.mean.abs().flatten()
    means = torch.cat([mean, mean * 2.0 ** k])
    invstd = torch.cat([1 / stats.std.flatten(), 2.0 ** -k / stats.std.flatten()])
    normal = lambda t: bool(((t >= 2 * info.tiny) & (t <= info.max / 2)).all())  # noqa: E731
    return normal(means[means > 0]) and normal(invstd)


SHIFTS = (0,) + tuple(s * 2 ** i for i in range(10) for s in (1, -1))
"""Powers of two the problem's values may be pre-scaled by to reach the safe band."""


def power_of_two_pair(problem, k: int):
    """(x, j, k'): x the problem's values times 2^j, k' = k or -k, the first pair (smallest
    |j| first) for which ``scaling_is_exact``; (values, 0, 0) when none is, leaving only
    the sign flip, which is exact for any input (rounding to nearest is symmetric)."""
    for j in SHIFTS:
        x = problem.values * 2.0 ** j
        for candidate in (k, -k):
            if scaling_is_exact(problem, x, candidate):
                return x, j, candidate
    return problem.values, 0, 0


def check_power_of_two(subject, case, reference):
    p = case.problem
    sign = case.params.sign
    x, j, k = power_of_two_pair(p, case.params.exponent)
    a = sign * 2.0 ** k
    eps = p.options.eps
    y_scaled = build(subject, p)(p.input(x * a))
    module = build(subject, p, options=replace(p.options, eps=eps / a ** 2))
    weight = getattr(module, "weight", None)
    if sign < 0 and weight is not None:
        with torch.no_grad():
            weight.neg_()
    y = module(p.input(x))
    expected = -y if sign < 0 and weight is None else y
    finite_baseline(f"BN(x; eps/{a ** 2:g})", expected, context(subject, p))
    assert_identical(f"BN({a:g} x; eps)", y_scaled, expected.detach(),
                     f"{context(subject, p)}; x = values * 2^{j}, "
                     f"compared with {'-' if sign < 0 and weight is None else ''}BN(x; eps/{a ** 2:g})"
                     f"{' with -gamma' if sign < 0 and weight is not None else ''}",
                     other=f"{'-' if sign < 0 and weight is None else ''}BN(x; eps/{a ** 2:g})")


SCALE_POWER_OF_TWO = register(Invariant(
    id="scale-power-of-two-exact",
    title="Scaling by a power of two is exact",
    family="forward, training mode",
    statement=(r"a = \pm 2^k:\; \mathrm{BN}_{\gamma,\beta,\varepsilon}(a x) = "
               r"\mathrm{BN}_{\mathrm{sign}(a)\gamma,\beta,\varepsilon/a^2}(x) \text{ bitwise}"),
    why=("x̂(ax; ε) = a(x − μ)/√(a²σ² + ε) = sign(a)·x̂(x; ε/a²): scaling the input is the "
         "same as scaling ε the other way. For a = ±2^k every intermediate (mean, centred "
         "values, their squares and sums, σ² + ε, its square root) is the other side's times "
         "a power of two, and rounding commutes with that as long as nothing overflows or "
         "underflows, so the identity holds bit for bit. A negative a flips x̂; γx̂ + β is then "
         "not −y, so the other side negates γ instead (exact: (−γ)x̂ = γ(−x̂)), or, without "
         "affine parameters, the output."),
    source="Ioffe & Szegedy (2015), section 3.3 (BN(ax) = BN(x)); IEEE 754 scaling by 2^k",
    applies=("training mode; every rank, dtype, layout and option; |k| ≤ 8, kept (with the "
             "input itself scaled by a power of two if needed) where x and 2^k x are exact "
             "in the input dtype, the sums of squares neither overflow nor underflow the "
             "accumulation dtype, and each channel's mean and 1/√(σ² + ε) are normal in the "
             "input dtype on both sides (torch rounds both to a half input dtype before the "
             "elementwise stage); where no such k exists (rare), a = ±1"),
    tolerance="none: bitwise equality (torch.equal; NaN never expected)",
    tolerance_formula=r"\tau = 0",
    params=drawn(
        PowerOfTwo,
        exponent=st.integers(1, 8) | st.integers(-8, -1),
        sign=st.sampled_from((-1.0, 1.0)),
    ),
    check=check_power_of_two,
))


def check_positive_scale(subject, case, reference):
    p = case.problem
    lo, hi = exponent_window(p.values, p.dtype)
    k = min(max(case.params.exponent, lo), hi) if lo <= hi else 0
    a = (1 + case.params.mantissa / 64) * 2.0 ** k
    eps, x = p.options.eps, p.values
    scaled = (a * x).to(p.torch_dtype).double()
    y_scaled = build(subject, p)(p.input(scaled))
    module = build(subject, p, options=replace(p.options, eps=eps / a ** 2))
    y = module(p.input(x))
    gamma, beta = affine_of(module, x.dim())
    plain, moved = statistics(x, eps / a ** 2), statistics(scaled, eps)
    tol = (output_tolerance(p.dtype, plain, gamma, beta)
           + output_tolerance(p.dtype, moved, gamma, beta)
           + shifted_input_rounding(p.dtype, scaled, moved, gamma))
    ctx = f"{context(subject, p)}; compared with BN(x; eps/{a ** 2:g})"
    assert_finite_where(f"BN({a:g} x; eps)", y_scaled, exact_output(moved, gamma, beta), ctx)
    finite_baseline(f"BN(x; eps/{a ** 2:g})", y, ctx)
    assert_close(f"BN({a:g} x; eps)", y_scaled, y.detach(), tol, ctx)


SCALE_POSITIVE = register(Invariant(
    id="scale-invariance-positive",
    title="Scale invariance for a positive factor, up to the ε term",
    family="forward, training mode",
    statement=r"a > 0:\; \mathrm{BN}_\varepsilon(a x) = \mathrm{BN}_{\varepsilon/a^2}(x)",
    why=("x̂ is invariant to the scale of its input except through ε: "
         "a(x − μ)/√(a²σ² + ε) = (x − μ)/√(σ² + ε/a²). This is why batch norm makes a layer "
         "insensitive to the scale of its weights. With a not a power of two, a·x must be "
         "rounded, so the identity holds up to that rounding."),
    source="Ioffe & Szegedy (2015), section 3.3",
    applies=("training mode; every rank, dtype, layout and option; a = (1 + m/64)·2^k, "
             "1 ≤ m ≤ 63, |k| ≤ 4 kept where a·x neither overflows nor underflows"),
    tolerance=("the output tolerance of each pass, plus the effect of rounding a·x to the "
               "dtype (|δᵢ| ≤ u|a xᵢ|, bounded by u·max|a x| per channel, which moves the "
               "mean, the centred value and the variance), as for a rounded shift; ε/a² rounded "
               "to a Python float moves x̂ by at most u₆₄|x̂|/2, inside the output tolerance"),
    tolerance_formula=(tex(r"\tau_i = \tau^{out}_i(x;\varepsilon/a^2) + \tau^{out}_i(ax;\varepsilon) "
                       r"+ @{SAFETY}u\,\max_{c}|a x|\,(2+|\hat x_i|)\,|\gamma_c|/s_c(ax)")),
    params=drawn(
        PositiveScale, mantissa=st.integers(1, 63), exponent=st.integers(-4, 4)),
    check=check_positive_scale,
))
