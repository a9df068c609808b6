"""First and second derivatives of a batch norm against central finite differences
(torch.autograd.gradcheck and gradgradcheck, in float64, on small inputs)."""
from __future__ import annotations

import math
import re
from dataclasses import replace

import torch
from hypothesis import strategies as st
from torch.autograd.gradcheck import GradcheckError

from bn_invariants.invariants.bounds import tex
from bn_invariants.invariants.assertions import InvariantViolation, Unsupported
from bn_invariants.invariants.reference import closed_form
from bn_invariants.invariants.bounds import elementwise_tolerance
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.cases import Case
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import SAFETY, output_tolerance, relative_error
from bn_invariants.strategies import problems, unit_roundoff

MAX_ELEMENTS = 60
"""Largest input checked: gradcheck builds the full Jacobian, one column per element."""

SMOOTH_REGIMES = ("unit", "tiny_variance", "constant_channels", "heavy_tails")
"""Regimes where a step h = 1e-6 min(1, s) resolves the derivative in float64; offset,
mixed_scales and magnitude put values so far from the step's scale that rounding x + h
(not the subject) would dominate: conditioning is the forward family's business."""

DECLINED = ("once_differentiable", "not supported", "not implemented", "does not support",
            "double backward", "differentiate twice")
"""Phrases of a RuntimeError by which an implementation declines double backward."""


def _small(problem):
    """The problem with at most 3 channels and MAX_ELEMENTS values (2+ per channel)."""
    shape = list(problem.shape)
    shape[1] = min(shape[1], 3)
    while math.prod(shape) > MAX_ELEMENTS:
        k = max((d for d in range(len(shape)) if d != 1), key=lambda d: shape[d])
        shape[k] -= 1
    return replace(problem, shape=tuple(shape))


def small_cases(space, params):
    """float64 Cases of at most MAX_ELEMENTS values in smooth regimes (no params)."""
    return st.builds(Case, problem=problems(
        device=space.device, dtype_ranks=dict(space.dtype_ranks), long_reductions=False,
        regimes_allowed=SMOOTH_REGIMES, max_channels=3).map(_small))


def _differentiable(subject, p):
    """(f, inputs, stats, gamma, beta): f(x, *params) runs the subject's module with its
    trainable parameters replaced by the leaves in ``inputs``.  The parameters are the
    module's registered ones (weight and bias for torch's; whatever holds γ and β when
    they are properties; none when they are buffers), swapped by name, never by setattr
    on a property."""
    module = build(subject, p)
    names = [n for n, t in module.named_parameters() if t.requires_grad]
    leaves = [module.get_parameter(n).detach().clone().requires_grad_(True) for n in names]

    def f(x, *params):
        return torch.func.functional_call(module, dict(zip(names, params)), (x,))

    stats = statistics(p.values, p.options.eps)
    gamma, beta = affine_of(module, p.values.dim())
    return f, [p.input().requires_grad_(True)] + leaves, stats, gamma, beta


def _bounds(p, stats, gamma, beta):
    """(h, atol, rtol, rho, J): the step, gradcheck's tolerances, the float64 relative
    error rho of a statistic, and a bound J on first-derivative entries."""
    s_min = float(stats.std.min())
    h = 1e-6 * min(1.0, s_min)
    g_abs = 1.0 if gamma is None else float(gamma.abs().max())
    b_abs = 0.0 if beta is None else float(beta.abs().max())
    xmax = float(stats.xhat.abs().max())
    rho = relative_error("float64", stats.n) * float((1 + stats.mean.abs() / stats.std).max())
    jac = g_abs / s_min * (2 + xmax ** 2) + xmax + 1
    f_err = float(output_tolerance("float64", stats,
                                   gamma, beta).max())
    largest = max(1.0, float(p.values.abs().max()), g_abs, b_abs)
    rtol = SAFETY * (unit_roundoff("float64") * largest / h + (h / s_min) ** 2)
    return h, f_err / h + SAFETY * rho * jac, rtol, rho, jac


ZERO_SECOND_DERIVATIVE = (
    "; the analytical second derivative is all zero: a torch.autograd.Function whose backward "
    "is not itself differentiable gives that silently. Mark the backward @once_differentiable "
    "to decline double backward (this invariant is then skipped), or build it from "
    "differentiable operations")


def _all_zero_analytical(text: str) -> bool:
    """Whether gradcheck's message reports an analytical Jacobian of zeros only."""
    _, found, rest = text.partition("analytical:")
    values = rest.split("tensor(", 1)[-1].split("dtype")[0].split(")")[0]  # not float64's 64
    numbers = re.findall(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?", values)
    return bool(found) and bool(numbers) and all(float(v) == 0 for v in numbers)


def _run(check, what, subject, p, *args, **kwargs):
    try:
        check(*args, raise_exception=True, **kwargs)
    except GradcheckError as exc:
        hint = (ZERO_SECOND_DERIVATIVE if check is torch.autograd.gradgradcheck
                and _all_zero_analytical(str(exc)) else "")
        raise InvariantViolation(f"{what} passed=False, but should be True: {exc}{hint} "
                                 f"[{context(subject, p)}]") from None


def check_gradcheck(subject, case, reference):
    p = case.problem
    f, inputs, stats, gamma, beta = _differentiable(subject, p)
    h, atol, rtol, _, _ = _bounds(p, stats, gamma, beta)
    _run(torch.autograd.gradcheck, f"gradcheck(eps={h:.3g}, atol={atol:.3g}, rtol={rtol:.3g})",
         subject, p, f, tuple(inputs), eps=h, atol=atol, rtol=rtol)


GRADCHECK = register(Invariant(
    id="gradcheck",
    title="The backward pass agrees with finite differences",
    family="backward",
    statement=(r"J_{\text{backward}} = \frac{f(z + h e_j) - f(z - h e_j)}{2h} + O(h^2) "
               r"\text{ for } z \in \{x, \gamma, \beta\}"),
    why=("Whatever formula a backward pass uses, its Jacobian must be the derivative of the "
         "forward pass: torch.autograd.gradcheck builds both Jacobians column by column."),
    source="torch.autograd.gradcheck documentation; Ioffe & Szegedy (2015), section 3",
    applies=("training mode, float64, at most 60 values and 3 channels, regimes "
             "unit/tiny_variance/constant_channels/heavy_tails; every option and layout"),
    tolerance=("step h = 1e-6 min(1, s_min); atol: the float64 output tolerance over h (the "
               "numerical derivative's rounding) plus ρ J (the backward's rounding); rtol: "
               "u max|z|/h (rounding of z + h) plus (h/s_min)² (the central difference's "
               "truncation), all times SAFETY"),
    tolerance_formula=(tex(r"\mathrm{atol} = \frac{\max_i \tau^{out}_i}{h} + @{SAFETY}\rho J,\quad "
                       r"\mathrm{rtol} = @{SAFETY}\Big(\frac{u \max|z|}{h} + \frac{h^2}{s_{min}^2}\Big)")),
    cases=small_cases,
    check=check_gradcheck,
    dtypes=("float64",),
    long_reductions=False,
))


def _double_backward(f, inputs, g) -> None:
    """Backpropagate through the whole graph of the first backward pass, so that a node
    that declines (e.g. @once_differentiable's DelayedError, which gradgradcheck's
    targeted torch.autograd.grad never reaches) raises its RuntimeError here."""
    grads = torch.autograd.grad(f(*inputs), inputs, g, create_graph=True, allow_unused=True)
    live = [t.sum() for t in grads if t is not None and t.requires_grad]
    if live:
        torch.autograd.backward(sum(live))
    for t in list(inputs) + [g]:
        t.grad = None


def check_gradgradcheck(subject, case, reference):
    p = case.problem
    f, inputs, stats, gamma, beta = _differentiable(subject, p)
    h, _, rtol, rho, jac = _bounds(p, stats, gamma, beta)
    g = p.cotangent().to(p.device).requires_grad_(True)
    first = closed_form(stats, g.detach().cpu(), gamma).abs().max()
    f_err = float(elementwise_tolerance("float64", stats, g.detach().cpu(), gamma).max()
                  + SAFETY * rho * g.detach().abs().sum() * (1 + stats.xhat.abs().max()))
    hess = jac * (1 + float(g.detach().abs().max())) * (1 + 1 / float(stats.std.min())) + first
    atol = f_err / h + SAFETY * rho * float(hess)
    rtol = rtol + SAFETY * unit_roundoff("float64") * float(g.detach().abs().max()) / h
    try:
        _double_backward(f, inputs, g)
        _run(torch.autograd.gradgradcheck,
             f"gradgradcheck(eps={h:.3g}, atol={atol:.3g}, rtol={rtol:.3g})",
             subject, p, f, tuple(inputs), (g,), eps=h, atol=atol, rtol=rtol)
    except RuntimeError as exc:
        if any(phrase in str(exc).lower() for phrase in DECLINED):
            raise Unsupported(f"double backward: {str(exc).splitlines()[0]}") from None
        raise


GRADGRADCHECK = register(Invariant(
    id="gradgradcheck",
    title="The double backward pass agrees with finite differences of the backward",
    family="backward",
    statement=(r"\frac{\partial}{\partial z}\Big(g^\top \frac{\partial \mathrm{BN}}"
               r"{\partial x}\Big) \text{ agrees with central differences, } "
               r"z \in \{x, \gamma, \beta, g\}"),
    why=("Second derivatives (gradient penalties, Hessian-vector products, meta-learning) "
         "differentiate the backward pass itself; torch.autograd.gradgradcheck compares that "
         "with finite differences of the first backward. An implementation that declines "
         "double backward explicitly (e.g. @once_differentiable) is reported as unsupported, "
         "not wrong."),
    source="torch.autograd.gradgradcheck documentation; Ioffe & Szegedy (2015), section 3",
    applies="as gradcheck; the upstream gradient g is the problem's cotangent",
    tolerance=("as gradcheck with the first derivatives (dx, dγ, dβ) as the function: atol "
               "their float64 error over h plus ρ times a bound on second-derivative "
               "entries; rtol adds the rounding of g + h"),
    tolerance_formula=(tex(r"\mathrm{atol} = \frac{\max_i \tau^{dx}_i + @{SAFETY}\rho\sum|g|(1+|\hat x|)}"
                       r"{h} + @{SAFETY}\rho H,\quad \mathrm{rtol} = @{SAFETY}\Big(\frac{u\max(|z|,|g|)}{h} + "
                       r"\frac{h^2}{s_{min}^2}\Big)")),
    cases=small_cases,
    check=check_gradgradcheck,
    dtypes=("float64",),
    long_reductions=False,
))
