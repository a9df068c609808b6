"""Agreement across devices: the same training step on the GPU and on the CPU.

The core, ``assert_steps_agree``, compares any two (subject, device) pairs, so the
same code that checks CUDA against the CPU on a GPU machine is tested on the CPU
alone (a subject against the float64 oracle, a broken batch norm against torch).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from hypothesis import reject

from bn_invariants.invariants.bounds import tex
from bn_invariants.invariants.step import StepRecord, affine_views, momentum_factor, record_step
from bn_invariants.invariants.assertions import InvariantViolation, Unsupported, assert_close, assert_true
from bn_invariants.invariants.assertions import is_device_fault
from bn_invariants.invariants.bounds import input_gradient_tolerance, parameter_gradient_tolerances, running_tolerances
from bn_invariants.invariants.step import build
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.subjects import SubjectError
from bn_invariants.invariants.bounds import output_tolerance








@dataclass(frozen=True)
class StepBounds:
    """One side's bounds on the distance of each recorded tensor from its exact value."""

    output: torch.Tensor
    input_grad: torch.Tensor
    bias_grad: torch.Tensor
    weight_grad: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor


def step_bounds(problem) -> StepBounds:
    """The derived bounds of one training step of ``problem`` in its dtype: the output
    tolerance of agrees-with-reference, the input-gradient tolerance of
    differential-agreement, the parameter-gradients rule, and the running-statistics
    rule of differential-agreement (fresh buffers: mean 0, var 1)."""
    p = problem
    s = statistics(p.values, p.options.eps)
    gamma, beta = affine_views(p)
    g = p.cotangent().to(p.torch_dtype).double()
    c = p.num_features
    mean0, var0 = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    tol_mean, tol_var = running_tolerances(p.dtype, p.dtype, s, momentum_factor(p), mean0, var0)
    beta_tol, gamma_tol = parameter_gradient_tolerances(p.dtype, s, g)
    return StepBounds(
        output_tolerance(p.dtype, s, gamma, beta),
        input_gradient_tolerance(p.dtype, s, g, gamma),
        beta_tol, gamma_tol, tol_mean, tol_var)






def _step_on(subject, problem, device: str, declines: bool) -> StepRecord:
    """The step of ``subject`` on ``device``; with ``declines``, a subject that raises
    there (an error, not a broken invariant) declines the case instead of failing it."""
    here = dataclasses.replace(problem, device=device)
    try:
        return record_step(build(subject, here), subject, here, f" on {device}")
    except (InvariantViolation, SubjectError):
        raise
    except Exception as exc:
        if not declines or is_device_fault(exc):
            raise
        raise Unsupported(f"{subject} on {device} raised {type(exc).__name__} on "
                          f"{here.summary()}: {exc}") from exc


def assert_steps_agree(problem, first, second) -> None:
    """Raise InvariantViolation unless one training step of ``first`` = (subject, device)
    agrees with one of ``second`` on ``problem``'s values, options, affine parameters
    and cotangent: y, dl/dx, dγ, dβ and the running statistics within the sum of both
    sides' derived bounds (2τ, each side within τ of the exact value), the output's
    dtype and num_batches_tracked exactly.  ``problem.device`` is ignored; ``second``
    raising where ``first`` ran declines the case (Unsupported), and ``second``
    returning a non-finite value rejects the example: ``second`` is the baseline, and
    its own failures are reported by the invariants run on its device."""
    (subject_a, device_a), (subject_b, device_b) = first, second
    a = _step_on(subject_a, problem, device_a, declines=False)
    b = _step_on(subject_b, problem, device_b, declines=True)
    if not b.finite:
        # The baseline broke its own contract (torch's CPU float16 backward overflow, a
        # known deviation checked on the CPU): this example cannot judge the first side.
        reject()
    shown = dataclasses.replace(problem, device=device_a).summary()
    ctx = f"{subject_a} on {device_a} against {subject_b} on {device_b}; {shown}"
    bound = step_bounds(problem)
    on = f" on {device_a}"
    assert_true(f"BN(x).dtype{on}", a.dtypes["output"] == b.dtypes["output"],
                a.dtypes["output"], f"{b.dtypes['output']} as on {device_b}", ctx)
    assert_close(f"BN(x){on}", a.output, b.output, 2 * bound.output, ctx)
    grad_ctx = f"{ctx}; l = sum(g * BN(x)), g as drawn (cotangent regime in the problem)"
    assert_close(f"dl/dx{on}", a.input_grad, b.input_grad, 2 * bound.input_grad, grad_ctx)
    for name, tol in (("bias_grad", bound.bias_grad), ("weight_grad", bound.weight_grad)):
        _compare_optional(f"dl/d{'beta' if name == 'bias_grad' else 'gamma'}{on}",
                          getattr(a, name), getattr(b, name), 2 * tol, device_b, grad_ctx)
    factor = momentum_factor(problem)
    when = f"{ctx}; after one step from fresh buffers, momentum factor {factor:g}"
    _compare_optional(f"running_mean{on}", a.running_mean, b.running_mean,
                      2 * bound.running_mean, device_b, when)
    _compare_optional(f"running_var{on}", a.running_var, b.running_var,
                      2 * bound.running_var, device_b, when)
    assert_true(f"num_batches_tracked{on}", a.batches == b.batches, a.batches,
                f"{b.batches} as on {device_b}", when)




def _compare_optional(what, got, expected, tol, other: str, ctx: str) -> None:
    """assert_close where both sides have the tensor; one side alone is a violation."""
    __tracebackhide__ = True
    if got is None and expected is None:
        return
    if got is None or expected is None:
        raise InvariantViolation(
            f"{what}={'None' if got is None else 'a tensor'}, but should be "
            f"{'None' if expected is None else 'a tensor'} as on {other} [{ctx}]")
    assert_close(what, got, expected, tol, ctx)


def check(subject, case, reference):
    p = case.problem
    assert_steps_agree(p, (subject, p.device), (subject, "cpu"))


DEVICE_AGREEMENT = register(Invariant(
    id="device-agreement",
    title="Agreement of the GPU with the CPU",
    family="devices",
    statement=(r"|f_{cuda}(x) - f_{cpu}(x)| \le 2\tau_f \text{ for } f \in \{\mathrm{BN}(x),\ "
               r"\partial\ell/\partial x,\ \partial\ell/\partial\gamma,\ \partial\ell/\partial"
               r"\beta,\ \text{running mean},\ \text{running var}\},\ "
               r"\text{num\_batches\_tracked equal}"),
    why=("A batch norm is one function whatever device runs it: the CUDA kernels (cuDNN or "
         "torch's own, with their own reduction order, Welford merges and channels-last "
         "paths) and the CPU kernels must each be within their rounding-error bound of the "
         "exact training step, hence within twice that bound of each other. Comparing the "
         "whole step, output, all three gradients and the running buffers, catches a device "
         "that computes something else: a missing Bessel correction in one kernel, a "
         "momentum read the other way, a stride bug of one memory format."),
    source=("PyTorch documentation: CUDA semantics and Reproducibility (results across "
            "devices agree up to rounding, not bitwise); torch.nn.BatchNorm2d documentation"),
    applies=("CUDA only (skipped elsewhere): the subject on the problem's CUDA device against "
             "the same subject on the CPU, same options, affine parameters, input values, "
             "layout and upstream gradient; training mode, one step from fresh buffers; "
             "every rank, dtype, layout, regime and option (a case the CPU refuses is skipped)"),
    tolerance=("each side is within its derived bound τ of the exact value, so the two are "
               "within 2τ: τ for the output is that of agrees-with-reference, for dl/dx that "
               "of differential-agreement, for dγ and dβ that of parameter-gradients, for the "
               "running statistics that of differential-agreement (momentum times the batch "
               "statistic's error plus a rounding of each buffer term); the output dtype and "
               "num_batches_tracked must be equal"),
    tolerance_formula=(tex(r"|a - b| \le 2\tau,\quad \tau \in \{\tau^{out}_i,\ \tau^{dx}_i,\ "
                       r"@{SAFETY}(u_{acc}k(n)+u_{out})\textstyle\sum_{i\in c}|g_i|(1 + "
                       r"\tfrac{|\mu_c|}{s_c} + |\hat x_i|),\ @{SAFETY}(u_{acc}k(n)+u_{out})"
                       r"\sum_{i\in c}|g_i|,\ \tau^{rm}_c,\ \tau^{rv}_c\}")),
    check=check,
    devices=("cuda",),
))
