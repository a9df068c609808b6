"""Differential testing: the subject against a reference implementation (--bn-ref)."""
from __future__ import annotations

import torch

from bn_invariants.invariants.bounds import tex
from bn_invariants.invariants.step import momentum_factor
from bn_invariants.invariants.assertions import InvariantViolation, Unsupported, assert_close
from bn_invariants.invariants.assertions import is_device_fault
from bn_invariants.invariants.step import computes_in_float64, training_step
from bn_invariants.invariants.bounds import input_gradient_tolerance, running_tolerances
from bn_invariants.invariants.step import context
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.subjects import SubjectError
from bn_invariants.invariants.bounds import output_tolerance
from bn_invariants.strategies import finfo, unit_roundoff


def _reference_step(reference, problem, cotangent):
    """The reference's step; a reference that refuses the input declines the case."""
    try:
        return training_step(reference, problem, cotangent)
    except (SubjectError, InvariantViolation):
        raise
    except Exception as exc:
        if is_device_fault(exc):
            raise
        raise Unsupported(f"reference {reference} raised {type(exc).__name__} on "
                          f"{problem.summary()}: {exc}") from exc


def _side(problem, precise: bool, bound, value):
    """One side's tolerance: ``bound(dtype)`` for an implementation in the problem's
    dtype; for a float64 oracle the float64 bound plus one rounding of ``value``."""
    if not precise:
        return bound(problem.dtype)
    return bound("float64") + unit_roundoff(problem.dtype) * value.abs()


def check(subject, case, reference):
    p = case.problem
    g = p.cotangent().to(p.torch_dtype).double()
    got = training_step(subject, p, g)
    want = _reference_step(reference, p, g)
    precise = computes_in_float64(reference)
    s = statistics(p.values, p.options.eps)
    ctx = f"{context(subject, p)}; reference {reference}"

    def out_bound(dtype):
        return output_tolerance(dtype, s, got.gamma, got.beta)

    def grad_bound(dtype):
        return input_gradient_tolerance(dtype, s, g, got.gamma)

    assert_close("BN(x)", got.output, want.output,
                 out_bound(p.dtype) + _side(p, precise, out_bound, want.output), ctx)
    assert_close("dl/dx", got.input_grad, want.input_grad,
                 grad_bound(p.dtype) + _side(p, precise, grad_bound, want.input_grad),
                 f"{ctx}; l = sum(g * BN(x)), g as drawn (cotangent regime in the problem)")
    _check_running(p, got, want, precise, s, ctx)


def _check_running(p, got, want, precise, s, ctx):
    """The running statistics after one step, where the reference keeps them."""
    if want.running_mean is None:
        return
    if got.running_mean is None or got.running_var is None:
        raise InvariantViolation(f"running_mean=None, but should be a tensor like the "
                                 f"reference's, track_running_stats=True [{ctx}]")
    c = p.num_features
    mean0, var0 = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    factor = momentum_factor(p)
    tol_mean, tol_var = running_tolerances(p.dtype, p.dtype, s, factor, mean0, var0)
    ref_mean, ref_var = running_tolerances("float64" if precise else p.dtype, p.dtype, s,
                                           factor, mean0, var0)
    when = f"{ctx}; after one step, momentum factor {factor:g}"
    # buffers in the input's dtype: where the exact update passes its range (a float16
    # running variance of heavy tails, say), ±inf is that update rounded
    top = finfo(p.dtype).max
    assert_close("running_mean", got.running_mean, want.running_mean, tol_mean + ref_mean, when,
                 overflow=top)
    assert_close("running_var", got.running_var, want.running_var, tol_var + ref_var, when,
                 overflow=top)


DIFFERENTIAL_AGREEMENT = register(Invariant(
    id="differential-agreement",
    title="Agreement with a reference implementation",
    family="differential",
    statement=(r"|f(x) - f_{ref}(x)| \le \tau + \tau_{ref} \text{ for } f \in \{\mathrm{BN}(x),\ "
               r"\partial\ell/\partial x,\ \text{running mean},\ \text{running var}\}"),
    why=("Two correct batch norms compute the same function: each is within its own "
         "rounding-error bound of the exact value, so they are within the sum of the "
         "two bounds of each other. Comparing the whole training step (output, input "
         "gradient, running statistics) against a trusted implementation (--bn-ref; by "
         "default the float64 oracle) catches any semantic difference the targeted "
         "invariants do not name: Bessel's correction in the wrong place, momentum read "
         "the wrong way round, a gradient that misses a term."),
    source=("McKeeman (1998), Differential testing for software; torch.nn.BatchNorm2d "
            "documentation (running statistics, momentum)"),
    applies=("training mode, one step from fresh buffers; every rank, dtype, layout, regime "
             "and option the subject accepts (cases the reference refuses are skipped)"),
    tolerance=("the sum of both sides' bounds, each for the precision it computes in (float64 "
               "for the oracle, plus one rounding to the input dtype): output as in "
               "agrees-with-reference; dl/dx: SAFETY·e·(3 + |μ|/s + |x̂ᵢ|)(|γ|/s)·(|gᵢ| + "
               "1.5·mean|g| + (1 + 2|x̂ᵢ|)·mean(|g|(1 + 2|x̂|))); running mean and variance: "
               "momentum times the batch statistic's error e(|μ| + σ), resp. "
               "e(|μ| + σ)(σ + e(|μ| + σ))·n/(n−1), plus a rounding of each buffer term; "
               "e = u_acc·k(n) + u_out for dl/dx, u_acc·(k(n) + 1) for the statistics"),
    tolerance_formula=(tex(r"\tau^{dx}_i = @{SAFETY}e\,(3 + \tfrac{|\mu|}{s} + |\hat x_i|)"
                       r"\tfrac{|\gamma|}{s}\big(|g_i| + 1.5\overline{|g|} + (1 + 2|\hat x_i|)\,"
                       r"\overline{|g|(1+2|\hat x|)}\big),\ "
                       r"\tau^{rm} = @{SAFETY}[m\,e(|\mu|+\sigma) + u_{out}(\ldots)],\ "
                       r"\tau^{rv} = @{SAFETY}[m\,e(|\mu|+\sigma)(\sigma + e(|\mu|+\sigma))\tfrac{n}{n-1}"
                       r" + u_{out}(\ldots)]")),
    check=check,
    needs_reference=True,
))
