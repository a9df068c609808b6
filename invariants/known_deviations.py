"""The table of torch's known deviations, as data: one entry per (invariant, factories,
dtype) with its minimal counterexample, what was measured and why it happens.

Keyed by the Invariant objects of the registry (a misspelt id fails at import); each
region predicate is named for the storage it covers.  The runner excludes each region
from the property test and replays the counterexample as an xfail (``deviations``).
"""
from __future__ import annotations

import dataclasses

from torch import nn

from bn_invariants.invariants import catalogue  # noqa: F401  (registers every invariant)
from bn_invariants.invariants.deviations import KnownDeviation
from bn_invariants.invariants.params import BiasOffset, Extreme, Params, Scale, Shift, Steps
from bn_invariants.invariants.cases import Case, Space
from bn_invariants.invariants.registry import REGISTRY
from bn_invariants.invariants.subjects import TORCH_FACTORIES, FunctionalBatchNorm
from bn_invariants.strategies import BNOptions, Problem

MEASURED_ON = ("2.13", "2.14")
"""The torch versions every entry below was measured on (torch 2.13.0 and 2.14.1, CPU:
each counterexample still fails on 2.14.1, none passes)."""

RANK_FAMILIES = ((nn.BatchNorm1d, FunctionalBatchNorm), (nn.BatchNorm2d,), (nn.BatchNorm3d,))
"""torch's factories by the ranks they accept (2 and any, 4, 5): one counterexample each."""


# ---- regions -------------------------------------------------------------------------

def strided_or_channels_last(problem) -> bool:
    """Input in strided or channels-last storage (torch's non-contiguous CPU kernels)."""
    return problem.layout in ("strided", "channels_last")


def strided(problem) -> bool:
    """Input in strided storage (non-contiguous, not channels-last)."""
    return problem.layout == "strided"


def strided_kernel(problem) -> bool:
    """Input torch's CPU kernels treat as strided: strided storage, or channels last at
    rank 3 (torch has a channels-last memory format for ranks 4 and 5 only; measured:
    rank-3 channels-last input gives the strided kernel's eval output, rank 2 does not)."""
    return problem.layout == "strided" or (problem.layout == "channels_last"
                                           and len(problem.shape) == 3)


def contiguous(problem) -> bool:
    """Input in contiguous storage (no storage offset)."""
    return problem.layout == "contiguous"


STRIDED_OR_CHANNELS_LAST = "strided or channels-last storage"


def _entry(invariant_id, factories, dtype, counterexample, measured, explanation,
           region=None, region_text="") -> KnownDeviation:
    return KnownDeviation(
        invariant=REGISTRY[invariant_id], factories=factories, device="cpu", dtypes=(dtype,),
        counterexample=counterexample, measured=measured, explanation=explanation,
        measured_on=MEASURED_ON, region=region, region_text=region_text)


# ---- float16 backward overflow (strided or channels-last) ----------------------------

HALF_BACKWARD_OVERFLOW = (
    "torch's CPU float16 backward, for channels-last or strided input (a contiguous copy of "
    "the same values takes another kernel and passes), holds a per-channel intermediate in "
    "float16: the sum of g (x - mean), or that sum times 1/(var + eps). Once it passes 65504 "
    "(the float16 maximum) it overflows and dl/dx is NaN for the whole channel, though the "
    "exact gradient, the input and the output are all in float16's range; float32 "
    "accumulation, the standard for half types, would not overflow. Reached by heavy tails "
    "over a long reduction (the sum itself), by unit-normal values over a long reduction "
    "with a cotangent correlated with x-hat (measured: (2, 1, 224, 224) strided, sum g (x - "
    "mean) near 1e5), and by tiny variance with a small eps (1/var near 1e6).")


def _long_reduction_cases(make_case):
    """(factories, make_case(shape, family)) for torch's three rank families, each on the
    strategy's long-reduction shape with one channel (family 0, 1, 2: ranks 2, 4, 5)."""
    shapes = ((100000, 1), (2, 1, 224, 224), (2, 1, 37, 37, 37))
    return tuple((factories, make_case(shape, family))
                 for family, (factories, shape) in enumerate(zip(RANK_FAMILIES, shapes)))


def half_backward_overflow_cases():
    """(factories, counterexample) for the float16 backward overflow, one per rank family:
    the strategy's long-reduction shapes, one channel, strided, heavy tails."""
    return _long_reduction_cases(lambda shape, _: Case(Problem(
        shape=shape, dtype="float16", layout="strided", regime="heavy_tails", severity=1.0,
        seed=1)))


def half_backward_tiny_variance_cases(params: Params = Params()):
    """(factories, counterexample) for the float16 backward overflow through 1/(var + eps):
    the long-reduction shapes, one channel, strided, tiny variance (std 1e-3), eps = 1e-7;
    ``params`` are the invariant's own."""
    seeds = (1, 1, 2)  # the first seed that fails for each family
    return _long_reduction_cases(lambda shape, family: Case(Problem(
        shape=shape, dtype="float16", layout="strided", regime="tiny_variance",
        seed=seeds[family], options=BNOptions(eps=1e-7)), params))


def half_backward_overflow(invariant_id: str, cases, measured: str) -> list[KnownDeviation]:
    """The float16 backward overflow as deviations of ``invariant_id``, one per
    (factories, counterexample) of ``cases``."""
    return [_entry(invariant_id, factories, "float16", case, measured, HALF_BACKWARD_OVERFLOW,
                   strided_or_channels_last, STRIDED_OR_CHANNELS_LAST)
            for factories, case in cases]


# Found by a 200-example float16 search per invariant (python3 -m benchmarks.throughput
# first hit it): tiny variance and eps = 1e-7 over a long reduction make 1/(var + eps)
# times the per-channel sum of g (x - mean) pass 65504.
TINY_VARIANCE_OVERFLOWS = {
    "input-gradient-closed-form": (
        Params(), "dl/dx is NaN in all 100000 elements of the channel; the float64 closed form "
            "gives 389.4 ± 29 at the first (1/var = 9e5, sum g (x - mean) = 0.27 per 1e5 "
            "values)"),
    "input-gradient-sums-to-zero": (
        Params(), "sum_i dl/dx_i is NaN where it should be 0 ± 1.9e6"),
    "zero-bias-gradient": (
        BiasOffset(bias=0.0), "dl/db is NaN where it should be 0 ± 3.5e6: the paper's "
                              "zero gradient, lost to the overflow"),
    "no-bias-drift": (
        Steps(steps=2, lr=1.0), "b_1 is NaN after one step of gradient descent on b"),
    "variance-held-out-drift": (
        Steps(steps=2, lr=1.0), "dl/da is NaN where the float64 value is -45.2 ± 1.3e4"),
    "weight-gradient-radial": (
        Params(), "<W, dl/dW> is NaN where the float64 value is -5.57 ± 7.9e3"),
}

# Heavy tails over a long reduction: |sum g (x - mean)| = 1.4e5 > 65504.
HEAVY_TAIL_OVERFLOWS = {
    "layout-independence": (
        "dl/dx is NaN in every element of the channel for strided input, finite "
        "(|dl/dx| ~ 5e-4) for the same values contiguous; |sum g (x - mean)| = "
        "1.4e5 > 65504"),
    "differential-agreement": (
        "dl/dx is NaN in every element of the channel where the float64 reference "
        "gives finite values (|dl/dx| ~ 5e-4); |sum g (x - mean)| = 1.4e5 > 65504"),
    # Found by the throughput benchmark's 200-example search: (2, 3, 50000) channels-last;
    # the float32 parameters do not save the float16 backward from overflowing.
    "mixed-precision": (
        "dl/dx is inf in every element of the channel where the float64 closed form "
        "gives 5.5e-4 ± 1.0e-4; |sum g (x - mean)| = 1.4e5 > 65504"),
}

HALF_BACKWARD = [
    *(dev for invariant_id, (params, measured) in TINY_VARIANCE_OVERFLOWS.items()
      for dev in half_backward_overflow(invariant_id, half_backward_tiny_variance_cases(params),
                                        measured)),
    *(dev for invariant_id, measured in HEAVY_TAIL_OVERFLOWS.items()
      for dev in half_backward_overflow(invariant_id, half_backward_overflow_cases(), measured)),
    *half_backward_overflow(
        "weight-gradient-inverse-scale",
        [(TORCH_FACTORIES, Case(
            problem=Problem(shape=(2, 3, 224, 224), dtype="float16", layout="channels_last",
                            regime="heavy_tails", severity=0.5625, seed=0),
            params=Scale(scale=4.0)))],
        measured=("4 dl/dW(4W; 16 eps) is NaN in 3 of 9 elements (expected 283, 26.25, 156.75; "
                  "tolerance finite): every one of the 100352 dl/dx of channel 0 is NaN, where "
                  "the float64 closed form has |dl/dx| <= 0.0245; the unscaled run and the "
                  "reference subject pass")),
    *half_backward_overflow(
        "weight-norm-nondecreasing",
        [(TORCH_FACTORIES, Case(
            problem=Problem(shape=(100000, 2), dtype="float16", layout="strided",
                            regime="heavy_tails", severity=0.75, seed=0),
            params=Steps(steps=1, lr=0.5)))],
        measured=("dl/dW is NaN in row 1 (the reference subject gives [-92.8, 52.6]), so the "
                  "norm identity reads NaN: channel 1 of W u has var 2.1e4, |x| <= 2254 and "
                  "sum g (x - mu) = 6.9e4 > 65504; channel 0 (sum 3.5e3) is fine")),
    # Found by a 20-seed soak (seeds 11 and 15 reached it on BatchNorm2d channels-last
    # (8, 8, 1, 3) and BatchNorm3d strided (7, 1, 1, 3, 4)); measured on torch 2.13 only.
    *(dataclasses.replace(dev, measured_on=("2.13",)) for dev in half_backward_overflow(
        "parameter-gradients",
        [(factories, Case(Problem(shape=shape, dtype="float16", layout="strided",
                                  regime="heavy_tails", severity=1.0, seed=0,
                                  cotangent_regime="informative")))
         for factories, shape in zip(RANK_FAMILIES, ((84, 1), (7, 1, 3, 4), (7, 1, 1, 3, 4)))],
        measured=("dl/dgamma = inf where the float64 sum g x̂ is 145.04 ± 0.654: 84 values in "
                  "one channel, max|x| = 9216, s = 999.5, sum g (x - mu) = 1.45e5 > 65504; the "
                  "same values contiguous (and channels-last, ranks 4 and 5) pass. At the "
                  "100000-value strided cases above, dl/dgamma stays finite (dl/dx is NaN)"))),
]


# ---- bfloat16 dl/dβ rounded (strided or channels-last, mixed precision) ---------------

BFLOAT16_BIAS_GRADIENT_ROUNDED = (
    "torch's CPU batch norm, given bfloat16 input with float32 parameters in a "
    "non-contiguous layout (channels-last or strided), returns dl/dbeta rounded to "
    "bfloat16 (every value is a bfloat16 number; dl/dgamma is not), though it is a float32 "
    "gradient of a float32 parameter: an error of u_bf16 |sum g| = 2^-9 relative, where a "
    "float32 sum is off by at most u_32 k(n) sum|g|. The contiguous layout and float16 "
    "input get the float32 sum.")

# One counterexample per rank family, each the shrunk example of find_violation.
BFLOAT16_BIAS_GRADIENT = [
    _entry("mixed-precision", factories, "bfloat16",
           Case(Problem(shape=shape, dtype="bfloat16", layout="strided", seed=0)),
           ("dl/dbeta = -1.4296875 (2, 2) and -1.3515625 (ranks 4, 5), bfloat16 numbers, "
            "where sum g = -1.42676 and -1.35449: error 2.9e-3, 1150x to 2870x the "
            "tolerance (1e-6 to 2.6e-6); on (64, 3, 8, 8) channels-last, error 0.35 at "
            "|sum g| ~ 100, one rounding to bfloat16"),
           BFLOAT16_BIAS_GRADIENT_ROUNDED, strided_or_channels_last, STRIDED_OR_CHANNELS_LAST)
    for factories, shape in zip(RANK_FAMILIES, ((2, 2), (2, 1, 1, 2), (2, 1, 1, 1, 2)))]


# ---- float16 eval-mode rv + eps in float16 (strided kernel) --------------------------

EVAL_HALF_VARIANCE_IN_HALF = (
    "torch's CPU float16 eval-mode batch norm, for input its kernels treat as strided "
    "(strided storage, and channels-last at rank 3), forms rv + eps in float16 instead "
    "of the accumulation dtype, so where it is below float16's smallest normal (6.1e-5) it "
    "is rounded to the subnormal grid (spacing 6e-8) and 1/sqrt(rv + eps) is off by up to "
    "half that spacing relative to it; the contiguous kernel and the channels-last kernel "
    "of ranks 4 and 5 form it in float32.")

EVAL_HALF_VARIANCE = [
    _entry("eval-affine-map", factories, "float16",
           Case(Problem(shape=shape, dtype="float16", layout="strided", regime="tiny_variance",
                        seed=165, options=BNOptions(eps=1e-7))),
           ("y = 5.7305 where a x + c = 5.9912 ± 0.252 (error 0.261, 1.04x): rv = "
            "2.98e-7 and eps = 1e-7 make rv + eps = 3.98e-7, a float16 subnormal that "
            "rounds to 4.17e-7 (+4.8%), so a = gamma/sqrt(rv + eps) is 2.3% small; the "
            "same values contiguous, channels-last or at a storage offset give 5.9922"),
           EVAL_HALF_VARIANCE_IN_HALF, strided_kernel, "strided storage, or channels-last at rank 3")
    for factories, shape in zip(RANK_FAMILIES, ((2, 1), (2, 1, 1, 1), (2, 1, 1, 1, 1)))] + [
    # found by the thorough run at (2, 3, 50000) channels-last: 11.1797 where a x + c =
    # 11.3285 ± 0.142 (1.04x), and 11.3281 for the same values contiguous
    _entry("eval-affine-map", RANK_FAMILIES[0], "float16",
           Case(Problem(shape=(1, 2, 2), dtype="float16", layout="channels_last",
                        regime="tiny_variance", seed=165, options=BNOptions(eps=1e-7))),
           ("y = -5.4531 where a x + c = -5.7116 ± 0.253 (error 0.258, 1.02x) on rank-3 "
            "channels-last input; the same values contiguous pass"),
           EVAL_HALF_VARIANCE_IN_HALF, strided_kernel, "strided storage, or channels-last at rank 3")]


# ---- half statistics rounded to the input dtype (every layout) -----------------------

HALF_STATISTICS_ROUNDED = (
    "torch's CPU batch norm rounds the batch mean and 1/s to the input dtype (they are "
    "kept in the parameter dtype) before forming y = (x - mean) * invstd * gamma + beta "
    "in float32; its outputs match that model bit for bit on these examples. Rounding "
    "them costs u_half (|mu|/s + |xhat|)|gamma| absolutely, many ulps of an output near "
    "zero, where float32 statistics and one final rounding would stay within 2 ulps.")

# One counterexample per rank family, so each torch factory replays one it accepts:
# the shrunk examples of find_violation (float16: (5, 2), bfloat16: (2, 3), seed 0).
HALF_STATISTICS = [
    _entry("half-precision-ulp", factories, dtype,
           Case(Problem(shape=base + spatial, dtype=dtype, seed=0)), measured,
           HALF_STATISTICS_ROUNDED)
    for dtype, base, measured in (
        ("float16", (5, 2), "error 6.87e-05 = 18 ulps at y = -0.00467 (7.7x the tolerance "
                            "8.91e-06); up to ~1700 ulps seen on (16, 4, 3, 3)"),
        ("bfloat16", (2, 3), "error 0.0117 = 3 ulps at y = -0.926 (1.5x the tolerance "
                             "0.0078); up to ~1600 ulps seen on (16, 4, 3, 3)"))
    for factories, spatial in zip(RANK_FAMILIES, ((), (1, 1), (1, 1, 1)))]


# ---- the variance's sum of squares overflows (every layout) --------------------------

SQUARES_OVERFLOW = (
    "torch's CPU batch norm accumulates the variance as a sum of squares in the "
    "accumulation dtype "
    "(float32 for float32 and bfloat16, float64 for float64) without scaling: "
    "once n·max|x|² passes its maximum, var = inf, x̂ = 0 and the output is "
    "silently β (running_var becomes inf) instead of raising or scaling first")


def _overflow_case(dtype: str, rank: int, position: float) -> Case:
    """Two values in one channel, so large that their squares overflow the accumulation dtype."""
    shape = (2, 1) + (1,) * (rank - 2)
    return Case(problem=Problem(shape=shape, dtype=dtype),
                params=Extreme(position=position, spread=0))


EXTREME_MAGNITUDES = [
    _entry("extreme-magnitudes", factories, dtype, _overflow_case(dtype, rank, position),
           measured, SQUARES_OVERFLOW)
    for dtype, position, measured in (  # the smallest counterexample's position, measured error
        ("float32", 0.75, "error 0.544 vs tolerance 1.39e-06 (3.9e5×): max|x| = 2^68"),
        ("bfloat16", 0.78125, "error 0.543 vs tolerance 0.046 (11.8×): max|x| = 2^71"),
        ("float64", 0.75, "error 0.544 vs tolerance 2.59e-15 (2.1e14×): max|x| = 2^523"))
    for rank, factories in zip((2, 4, 5), RANK_FAMILIES)]


# ======================================================================================
# CUDA: torch 2.11.0+cu130 on an NVIDIA H200 (2026-11-30, the first CUDA run: docs/gpu.md).
# Only what that run measured: a deviation of a factory whose test was lost to the run's
# device fault (a poisoned worker) is not recorded, its property test searches again.

MEASURED_ON_CUDA = ("2.11",)
"""The torch versions the CUDA entries below were measured on (2.11.0+cu130)."""


def _cuda_entry(*args, **kwargs) -> KnownDeviation:
    """``_entry``'s deviation, on CUDA and measured on MEASURED_ON_CUDA."""
    return dataclasses.replace(_entry(*args, **kwargs), device="cuda",
                               measured_on=MEASURED_ON_CUDA)


def _on_cuda(problem: Problem) -> Problem:
    """``problem`` on the GPU (a CUDA counterexample)."""
    return dataclasses.replace(problem, device="cuda")


# ---- float32 variance overflows in the Welford merge (CUDA, every layout) ------------

CUDA_SQUARES_OVERFLOW = (
    "torch's CUDA batch norm accumulates the statistics in float32 for float32 input "
    "without scaling: its Welford merges (Normalization.cuh: welford_merge_element, the "
    "warp merges of batch_norm_collect_statistics_kernel) form (mean_a - mean_b)^2 n_a n_b "
    "/ (n_a + n_b) in float32, so once the values reach about 2^64 the square overflows. "
    "Where both partial counts are non-zero the variance is inf, 1/s = 0 and the output is "
    "silently beta (measured on 4-D and 5-D input, which with float32 affine parameters "
    "torch hands to cuDNN, whose internals are not public); where a merge meets an empty "
    "partial (count 0), inf * 0 makes the variance NaN and every output NaN (measured on "
    "2-D input, torch's own kernel). No error is raised either way.")

CUDA_EXTREME_MAGNITUDES = [
    _cuda_entry("extreme-magnitudes", factories, "float32",
                dataclasses.replace(case, problem=_on_cuda(case.problem)), measured,
                CUDA_SQUARES_OVERFLOW)
    for rank, factories, measured in (
        (2, RANK_FAMILIES[0], "BN(x)[0, 0] = nan (BatchNorm1d and functional) where gamma "
                              "x̂ + beta = 2.054 ± 1.39e-06, both elements: max|x| = 2^68"),
        (4, RANK_FAMILIES[1], "BN(x)[0, 0, 0, 0] = 1.5099 = beta where gamma x̂ + beta = "
                              "2.054 ± 1.39e-06 (error 0.544, 3.9e5x): max|x| = 2^68"),
        (5, RANK_FAMILIES[2], "BN(x)[0, 0, 0, 0, 0] = 1.5099 = beta where gamma x̂ + beta = "
                              "2.054 ± 1.39e-06 (error 0.544, 3.9e5x): max|x| = 2^68"))
    for case in (_overflow_case("float32", rank, 0.75),)]


# ---- float16 batch mean rounded to float16 (CUDA, strided storage) -------------------

CUDA_HALF_MEAN_ROUNDED = (
    "torch's CUDA batch norm, for float16 input in strided storage (and, for 3-D and 5-D "
    "input, channels-last storage: the second CUDA run; the same values contiguous pass), "
    "uses the "
    "batch mean rounded to float16: its outputs match (x - fl16(mean)) (1/s) gamma + beta "
    "formed in float32 and rounded once, bit for bit, on every counterexample below, and "
    "the running mean folds in fl16(mean) (0.1 fl16(mean) exactly, with float32 buffers). "
    "Rounding the mean costs u16 |mean| |gamma| / s absolutely, several ulps of an output "
    "near zero, and half a float16 ulp of the mean in the float32 running_mean, where "
    "float32 statistics (what mixed precision keeps the float32 buffers for) would stay "
    "within float32 rounding.")

CUDA_HALF_STATISTICS = [
    _cuda_entry("half-precision-ulp", factories, "float16",
                Case(_on_cuda(Problem(shape=shape, dtype="float16", layout="strided",
                                      regime=regime, seed=seed))),
                measured, CUDA_HALF_MEAN_ROUNDED, strided, "strided storage")
    for factories, shape, regime, seed, measured in (
        (RANK_FAMILIES[0], (5, 2), "unit", 0,
         "BN(x)[4, 1] = -0.0046539 where fl16(gamma x̂ + beta) = -0.0046730 ± 8.91e-06 "
         "(error 1.91e-05 = 5 ulps, 2.14x; measured on functional, BatchNorm1d calls the "
         "same torch.nn.functional.batch_norm)"),
        (RANK_FAMILIES[1], (2, 1, 1, 1), "offset", 3,
         "BN(x)[1, 0, 0, 0] = 0.94922 where fl16(gamma x̂ + beta) = 0.94482 ± 0.000985 "
         "(error 0.00439 = 9 ulps, 4.46x; --bn-impl=torch.nn:BatchNorm2d run)"),
        (RANK_FAMILIES[2], (2, 6, 1, 1, 1), "unit", 0,
         "BN(x)[1, 2, 0, 0, 0] = 0.010017 where fl16(gamma x̂ + beta) = 0.010246 ± 1.67e-05 "
         "(error 0.000229 = 30 ulps, 13.7x; third CUDA run); 0.01001739501953125 is "
         "(x - fl16(mean)) (1/s) gamma + beta in float32 rounded once, bit for bit, with "
         "mean = -1.4494629 and fl16(mean) = -1.4492188 (checked on the CPU)"))]

CUDA_MIXED_HALF_MEAN = [
    _cuda_entry("mixed-precision", factories, "float16", Case(_on_cuda(problem)),
                ("running_mean = 0.062402345 = 0.1 fl16(mean) where 0.1 mean = 0.062377930 "
                 f"± 1.25e-07 (error 2.44e-05, 195x): float32 buffers, one step from (0, 1){run}"),
                CUDA_HALF_MEAN_ROUNDED, strided, "strided storage")
    for factories, problem, run in (
        ((nn.BatchNorm2d,), Problem(shape=(2, 1, 1, 1), dtype="float16", layout="strided",
                                    options=BNOptions(affine=False)), ""),
        # The third CUDA run: the same values (1.541, -0.2935) on BatchNorm1d, functional
        # and BatchNorm3d; f32(0.1 fl16(mean)) = 0.06240234524011612 checked on the CPU.
        (RANK_FAMILIES[0], Problem(shape=(2, 1), dtype="float16", layout="strided",
                                   cotangent_regime="informative"),
         " (third CUDA run: BatchNorm1d and functional both measured)"),
        ((nn.BatchNorm3d,), Problem(shape=(2, 1, 1, 1, 1), dtype="float16", layout="strided",
                                    options=BNOptions(eps=0.001, affine=False),
                                    cotangent_regime="informative"),
         " (third CUDA run)"))]


# ---- bfloat16 dl/dbeta from bfloat16 partial sums (CUDA, mixed precision) ------------

CUDA_BFLOAT16_BIAS_SUMS = (
    "torch's CUDA backward, given contiguous bfloat16 input with float32 "
    "parameters, sums dl/dbeta = sum g from partial sums held in bfloat16 "
    "(the measured value is two interleaved partial sums, each rounded to "
    "bfloat16, added in float32: the pattern of a packed two-lane bfloat16 "
    "accumulation; which kernel, torch's or cuDNN's, is not identified). It "
    "is a float32 gradient of a float32 parameter: an error of u_bf16 per "
    "partial sum (2^-9 relative) where a float32 sum is off by at most "
    "u_32 k(n) sum|g|. Measured on BatchNorm1d (functional calls the same "
    "torch.nn.functional.batch_norm) and BatchNorm2d; BatchNorm3d is not measured.")

CUDA_BFLOAT16_BIAS_GRADIENT = [
    _cuda_entry("mixed-precision", factories, "bfloat16", Case(_on_cuda(problem)), measured,
                CUDA_BFLOAT16_BIAS_SUMS, contiguous, "contiguous storage")
    for factories, problem, measured in (
        (RANK_FAMILIES[0], Problem(shape=(1, 1, 4), dtype="bfloat16"),
         "dl/dbeta = -1.357421875 where sum g = -1.3544921875 ± 2.55e-06 (error "
         "2.93e-3, 1150x); the value is fl32(fl_bf16(g1 + g3) + (g0 + g2)) exactly, "
         "g the four bfloat16 cotangents (measured on BatchNorm1d; functional calls "
         "the same torch.nn.functional.batch_norm)"),
        # The third CUDA run: BatchNorm3d's mixed-precision search stopped at its float16
        # strided running_mean (CUDA_MIXED_HALF_MEAN), so its bfloat16 dl/dbeta is unknown.
        ((nn.BatchNorm2d,), Problem(shape=(2, 2, 1, 2), dtype="bfloat16",
                                    cotangent_regime="informative"),
         "dl/dbeta[1] = -1.41796875 where sum g = -1.416015625 ± 5.35e-06 (error "
         "1.95e-3, 365x; third CUDA run); the value is fl32(fl_bf16(g0 + g2) + (g1 + g3)) "
         "exactly, g channel 1's four bfloat16 cotangents in (n, w) order, g0 and g2 the "
         "two batch elements at w = 0 (fl32(fl_bf16(g2 + g3) + (g0 + g1)) gives the same "
         "value: the pairing is not singled out; checked on the CPU); channel 0 (sum "
         "10.67) is within tolerance"))]

# ---- second CUDA run (2026-11-30, same machine and torch: docs/gpu.md) ----------------

def offset(problem) -> bool:
    """Input in offset storage (3 elements into its storage: a data pointer that is not
    16-byte aligned for a half type)."""
    return problem.layout == "offset"


def channels_last(problem) -> bool:
    """Input in channels-last storage."""
    return problem.layout == "channels_last"


CUDA_MISALIGNED_HALF = _cuda_entry(
    "mixed-precision", TORCH_FACTORIES, "float16",
    Case(_on_cuda(Problem(shape=(4, 62, 4), dtype="float16", layout="offset",
                          regime="magnitude", severity=0.0625, seed=2822,
                          options=BNOptions(eps=1.0, momentum=0.01),
                          cotangent_regime="heavy_tailed"))),
    ("torch.AcceleratorError: CUDA error: misaligned address, on BatchNorm1d with float32 "
     "parameters (mixed precision); the process's CUDA context is unusable afterwards, so "
     "every later CUDA call in that pytest worker failed the same way"),
    ("torch's CUDA batch norm crashes on float16 input whose data pointer is not 16-byte "
     "aligned (offset storage: 3 float16 elements, 6 bytes, into its storage): a kernel "
     "reads it with aligned vector loads, and the device raises a misaligned address, a "
     "sticky fault. Measured in mixed precision (float16 input, float32 parameters, which "
     "torch hands to cuDNN for 3-D and wider input), on BatchNorm1d; whether float16 "
     "parameters (torch's own kernel) or bfloat16 (which cuDNN does not take) crash too "
     "is not known, so float16 offset input is left out of every invariant on CUDA and "
     "bfloat16 is still searched. The input is a valid tensor: a clear error or a copy "
     "would do, a crash that kills the process's device is never right."),
    offset, "offset storage (a misaligned data pointer)")
CUDA_MISALIGNED_HALF = dataclasses.replace(CUDA_MISALIGNED_HALF, device_fault=True)

CUDA_EXTREME_MAGNITUDES_FLOAT64 = [
    _cuda_entry("extreme-magnitudes", factories, "float64",
                dataclasses.replace(case, problem=_on_cuda(case.problem)),
                (f"BN(x) = nan for both elements where gamma x̂ + beta = 2.054 ± 2.59e-15: "
                 f"max|x| = 2^523, n max|x|^2 = 2^1047 (rank {rank})"),
                CUDA_SQUARES_OVERFLOW.replace("float32", "float64").replace(
                    "2^64", "2^512"))
    for rank, factories in zip((2, 4, 5), RANK_FAMILIES)
    for case in (_overflow_case("float64", rank, 0.75),)]

CUDA_HALF_CHANNELS_LAST = [
    _cuda_entry("half-precision-ulp", factories, "float16",
                Case(_on_cuda(Problem(shape=shape, dtype="float16", layout="channels_last"))),
                (f"BN(x){index} = 0.45874 where fl16(gamma x̂ + beta) = 0.45654 ± 0.000492 "
                 "(error 0.0022 = 9 ulps, 4.47x); 0.458740234375 is (x - fl16(mean)) (1/s) "
                 "gamma + beta in float32 rounded once, bit for bit (checked on the CPU)"),
                CUDA_HALF_MEAN_ROUNDED, channels_last, "channels-last storage")
    for factories, shape, index in ((RANK_FAMILIES[0], (1, 3, 2), "[0, 2, 0]"),
                                    (RANK_FAMILIES[2], (1, 3, 1, 1, 2), "[0, 2, 0, 0, 0]"))]


def contiguous_or_strided(problem) -> bool:
    """Input in contiguous or strided storage (not channels-last, not offset)."""
    return problem.layout in ("contiguous", "strided")


CUDA_HALF_BACKWARD_NAN = (
    "torch's CUDA backward for float16 input with float16 parameters (which torch runs in "
    "its own kernels: cuDNN takes float16 input only with float32 parameters) returns NaN "
    "for the input gradient of a whole channel once that channel's sum g (x - mean) passes "
    "65504, the float16 maximum, though the exact gradient is finite and small: on every "
    "counterexample below torch's CPU float16 kernel, given the same contiguous input, "
    "passes, and the NaN channels are exactly those whose float64 sum g (x - mean) (taken "
    "on the CPU from the same input and cotangent) is 8.1e4 to 3.2e5, where the finite "
    "channels' are at most 49 in magnitude (one NaN channel, of heavy-tailed input, has 5.8e4, close "
    "to the limit). The pattern is that of the CPU's float16 intermediate "
    "(HALF_BACKWARD_OVERFLOW), here for contiguous 4-D and 5-D input too; the CUDA kernel "
    "that holds it is not identified. Measured on BatchNorm2d and BatchNorm3d only.")

def _half_informative(shape, layout="contiguous", heavy_tails=False) -> Problem:
    """A float16 CUDA problem with the informative cotangent, unit or heavy-tailed values."""
    regime = {"regime": "heavy_tails", "severity": 1.0} if heavy_tails else {}
    return _on_cuda(Problem(shape=shape, dtype="float16", layout=layout,
                            cotangent_regime="informative", **regime))


CUDA_HALF_BACKWARD = [
    _cuda_entry(invariant_id, (factory,), "float16",
                Case(problem, params=Steps(steps=1, lr=lr)), measured,
                CUDA_HALF_BACKWARD_NAN, contiguous_or_strided, "contiguous or strided storage")
    for invariant_id, factory, problem, lr, measured in (
        ("weight-norm-nondecreasing", nn.BatchNorm2d, _half_informative((2, 2, 224, 224)), 0.5,
         "dl/dW at step 0 is NaN in 4 of 4 elements; sum g (x - mean) = 8.1e4 and 1.8e5"),
        ("weight-norm-nondecreasing", nn.BatchNorm3d, _half_informative((2, 2, 37, 37, 37)),
         0.5, "dl/dW at step 0 is NaN in 4 of 4 elements; sum g (x - mean) = 8.1e4 and 1.8e5"),
        ("no-bias-drift", nn.BatchNorm2d, _half_informative((6, 5, 1, 4), heavy_tails=True),
         1.0, "b_1[2] = nan from a finite b_0 (1 of 5 channels); channel 2's sum g (x - mean) "
              "= -5.8e4 with max|x| = 7.0e3, the other channels' at most 48 in magnitude"),
        ("no-bias-drift", nn.BatchNorm3d, _half_informative((2, 1, 37, 37, 37), "strided"), 1.0,
         "b_1[0] = nan from a finite b_0; sum g (x - mean) = 1.7e5 (strided: torch's CPU "
         "fails here too, HALF_BACKWARD_OVERFLOW)"),
        ("variance-held-out-drift", nn.BatchNorm2d,
         _half_informative((5, 22, 1, 2), heavy_tails=True), 1.0,
         "dl/da[1] = nan where the float64 value is -2.6e-12 ± 0.69 (1 of 22 channels); "
         "channel 1's sum g (x - mean) = -1.0e5, the other channels' at most 49"),
        ("variance-held-out-drift", nn.BatchNorm3d, _half_informative((2, 2, 37, 37, 37)), 1.0,
         "dl/da = nan in 2 of 2 channels where the float64 value is -0.141 ± 1.11e4; "
         "sum g (x - mean) = 2.3e5 and 3.2e5"))]

# ---- third CUDA run (2026-11-30, same machine and torch: tools/gpu_verify.sh) ----------

CUDA_EXTREME_MAGNITUDES_BFLOAT16 = [
    _cuda_entry("extreme-magnitudes", factories, "bfloat16",
                dataclasses.replace(case, problem=_on_cuda(case.problem)),
                (f"BN(x) = 1.5078125 = beta for both elements where gamma x̂ + beta = 2.0508 "
                 f"± 0.046 (error 0.543, 11.8x): max|x| = 2^64, n max|x|^2 = 2^129 (rank "
                 f"{rank}; beta, not NaN, on 2-D input too)"),
                ("torch's CUDA batch norm accumulates bfloat16 input's statistics in float32, "
                 "without scaling, so the float32 square of its float32 extreme-magnitudes "
                 "entries overflows for bfloat16 input too, whose range reaches 2^127: at "
                 "max|x| = 2^64 the variance is inf, 1/s = 0 and the output is silently beta, on "
                 "every rank (on 2-D input too, where float32 input gives NaN). That the "
                 "overflow is the same Welford merge's is inferred from the float32 entries, "
                 "not traced; which kernel runs each rank is not identified. No error is "
                 "raised."))
    for rank, factories in zip((2, 4, 5), RANK_FAMILIES)
    for case in (_overflow_case("bfloat16", rank, 0.75),)]


def magnitude_regime(problem) -> bool:
    """Values of the magnitude regime (the whole tensor scaled by a power of two)."""
    return problem.regime == "magnitude"


CUDA_SHIFTED_MEAN_NAN = _cuda_entry(
    "shift-invariance", RANK_FAMILIES[0], "float32",
    Case(_on_cuda(Problem(shape=(2, 6), dtype="float32", regime="magnitude", severity=1.0,
                          seed=1, cotangent_regime="informative")),
         params=Shift(shift=0.25, exact=False)),
    ("BN(x + b)[0, 0] = nan (both elements of channel 0) where BN(x) = 1.1673 ± 2.78e-05: "
     "channel 0 of fl32(x + b) is -2.18e19 and -2.44e19 (max|x + b| = 2^64.4), its mean "
     "-2.31e19 and variance 1.65e36 are finite in float32 (max 3.4e38), mean^2 = 5.3e38 "
     "is not; the other five channels (max|x + b| <= 2^63.1) and BN(x) (channel 0 "
     "1.49e18, -1.08e18) are within tolerance (measured on functional; BatchNorm1d calls "
     "the same torch.nn.functional.batch_norm, its search did not reach this case)"),
    ("torch's CUDA batch norm returns NaN for a float32 channel whose statistics are "
     "finite and in range once its mean passes about 2^64, where mean^2 passes the float32 "
     "maximum. Inferred, not traced: the Welford merge with an empty partial of its "
     "float32 extreme-magnitudes deviation (degenerate inputs), whose (mean_a - mean_b)^2 "
     "with an empty mean_a = 0 is mean^2 = inf, times a count of 0: NaN. A per-channel "
     "shift reaches such a mean from a well-scaled spread: BN(x + b) must equal BN(x), "
     "which is finite and correct. No error is raised."),
    magnitude_regime, "the magnitude regime (values scaled up to about 2^60 in float32, "
                      "which a shift can carry past 2^64)")


CUDA_DEVIATIONS = (*CUDA_EXTREME_MAGNITUDES, *CUDA_HALF_STATISTICS, *CUDA_MIXED_HALF_MEAN,
                   *CUDA_BFLOAT16_BIAS_GRADIENT, CUDA_MISALIGNED_HALF,
                   *CUDA_EXTREME_MAGNITUDES_FLOAT64, *CUDA_HALF_CHANNELS_LAST,
                   *CUDA_HALF_BACKWARD, *CUDA_EXTREME_MAGNITUDES_BFLOAT16,
                   CUDA_SHIFTED_MEAN_NAN)
"""torch's deviations on CUDA (device="cuda"), replayed only where CUDA is present."""


DEVIATIONS: tuple[KnownDeviation, ...] = (
    *EVAL_HALF_VARIANCE, *EXTREME_MAGNITUDES, *HALF_STATISTICS, *BFLOAT16_BIAS_GRADIENT,
    *HALF_BACKWARD, *CUDA_DEVIATIONS)
"""Every known deviation of torch's batch norm."""


def excluding_deviations(invariant_id: str, subject, space: Space) -> Space:
    """``space`` without the dtypes a known deviation without a region covers for this
    subject (a deviation with a region is excluded case by case: ``regional_deviations``)."""
    excluded = {d for dev in DEVIATIONS if dev.covers(invariant_id, subject, space.device)
                and dev.region is None for d in dev.dtypes}
    if not excluded:
        return space
    return space.restrict(dtypes=[d for d in space.dtype_ranks if d not in excluded])


def regional_deviations(invariant_id: str, subject, device: str) -> tuple:
    """The known deviations with a region that concern this invariant, subject and device."""
    return tuple(dev for dev in DEVIATIONS
                 if dev.region is not None and dev.covers(invariant_id, subject, device))
