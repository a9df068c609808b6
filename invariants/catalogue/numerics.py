"""Numerical accuracy: the forward output against the float64 oracle on the same input."""
from __future__ import annotations


from bn_invariants.invariants.bounds import tex
from bn_invariants.invariants.bounds import half_tolerance, ulps_off
from bn_invariants.invariants.assertions import assert_close
from bn_invariants.invariants.reference import exact_output
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import output_tolerance

HALF_DTYPES = ("float16", "bfloat16")



def _forward(subject, problem):
    """(y, exact y in float64, statistics, gamma, beta) for the problem's input."""
    module = build(subject, problem)
    y = module(problem.input())
    stats = statistics(problem.values, problem.options.eps)
    gamma, beta = affine_of(module, len(problem.shape))
    return y, exact_output(stats, gamma, beta), stats, gamma, beta


def check_reference(subject, case, reference):
    p = case.problem
    y, expected, stats, gamma, beta = _forward(subject, p)
    tol = output_tolerance(p.dtype, stats, gamma, beta)
    assert_close("BN(x)", y, expected, tol, context(subject, p))






def check_half(subject, case, reference):
    p = case.problem
    y, expected, stats, gamma, beta = _forward(subject, p)
    rounded = expected.to(p.torch_dtype).double()
    tol = half_tolerance(p.dtype, stats, rounded, gamma, beta)
    assert_close("BN(x)", y, rounded, tol,
                 f"{context(subject, p)}; worst error {ulps_off(y, rounded, p.dtype):.3g} ulps")


AGREES_WITH_REFERENCE = register(Invariant(
    id="agrees-with-reference",
    title="Agreement with the float64 oracle",
    family="numerics",
    statement=(r"|\mathrm{BN}(x)_i - (\gamma \hat x_i + \beta)| \le \tau_i,\quad "
               r"\hat x_i = (x_i - \mu)/\sqrt{\sigma^2 + \varepsilon} \text{ in exact arithmetic}"),
    why=("A batch norm is a few reductions and an elementwise map, each with a known "
         "rounding error: a mean or variance summed over n values is off by at most "
         "k(n)·u relative to the sum of magnitudes (Higham), and cancellation in x − μ "
         "multiplies that by |μ|/s. An implementation within that bound is as accurate "
         "as its arithmetic allows; one outside it loses precision it need not lose, "
         "like a variance formed as E[x²] − E[x]², whose error grows with (|μ|/σ)²."),
    source="Higham, Accuracy and Stability of Numerical Algorithms (2002), 4.2 and 1.9; "
           "Chan, Golub & LeVeque (1983), Algorithms for computing the sample variance",
    applies="training mode; every rank, dtype, layout, regime and option",
    tolerance=("the output tolerance: SAFETY·[(u_acc·k(n) + u_out)(1 + |μ|/s + |x̂|)|γ| + "
               "u_out|β|] + the smallest normal number, with k(n) = n, statistics "
               "accumulated in u_acc (float32 for half types) and the elementwise stage in "
               "u_out; measured against the float64 statistics of the same rounded input"),
    tolerance_formula=(tex(r"\tau_i = @{SAFETY}\big[(u_{acc}n + u_{out})(1 + |\mu|/s + |\hat x_i|)|\gamma|"
                       r" + u_{out}|\beta|\big] + \mathrm{tiny}")),
    check=check_reference,
))


HALF_PRECISION_ULP = register(Invariant(
    id="half-precision-ulp",
    title="Half-precision outputs within a few ulps of the correctly rounded value",
    family="numerics",
    statement=(r"|\mathrm{BN}(x)_i - \mathrm{fl}(\gamma\hat x_i + \beta)| \le "
               r"2\,\mathrm{ulp}(\mathrm{fl}(\gamma\hat x_i + \beta)) + "
               r"\tau^{acc}_i \text{ for float16 and bfloat16 } x"),
    why=("The standard way to normalise half-precision data is to accumulate the "
         "statistics in float32 and round the result once to the half type (as mixed "
         "precision training assumes). Done so, the only errors are the float32 ones, far "
         "below a half-precision ulp, and one final rounding: the output is the correctly "
         "rounded value up to a couple of ulps. Forming the elementwise stage in half "
         "precision instead (y = x·a + b with a, b rounded to half) loses up to u|β| "
         "absolutely, many ulps of an output near zero."),
    source=("Micikevicius et al. (2018), Mixed precision training, section 3.3 "
            "(batch-norm statistics accumulated in float32); IEEE 754-2019, 4.3 (rounding)"),
    applies="training mode; float16 and bfloat16 inputs; every rank, layout, regime and option",
    tolerance=("2 ulps of the correctly rounded reference (half an ulp for each of two "
               "roundings, doubled for a binade boundary), plus what float32 statistics "
               "may cost: SAFETY·u32·[k(n)(1 + |μ|/s + |x̂|)|γ| + |β|], k(n) = n"),
    tolerance_formula=(tex(r"\tau_i = @{ULPS}\,\mathrm{ulp}(\mathrm{fl}(y_i)) + @{SAFETY}u_{32}\big[n(1 + |\mu|/s"
                       r" + |\hat x_i|)|\gamma| + |\beta|\big]")),
    check=check_half,
    dtypes=HALF_DTYPES,
))
