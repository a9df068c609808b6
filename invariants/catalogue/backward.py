"""The backward pass of a training-mode batch norm against its closed form."""
from __future__ import annotations

import torch

from bn_invariants.invariants.bounds import tex
from bn_invariants.invariants.assertions import assert_close, channels_past_the_range
from bn_invariants.invariants.reference import closed_form, per_channel_sum, radial_value
from bn_invariants.invariants.bounds import elementwise_tolerance, radial_reference_error, reference_xhat_error
from bn_invariants.invariants.step import input_gradient, rounded_cotangent, trainable_affine
from bn_invariants.invariants.bounds import parameter_gradient_tolerances
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.preconditions import AFFINE
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import GRADIENT_SUM, gradient_sum_tolerance
from bn_invariants.strategies import finfo


def _gradient_and_closed_form(subject, p):
    grad, module = input_gradient(subject, p)
    stats = statistics(p.values, p.options.eps)
    gamma, _ = affine_of(module, p.values.dim())
    return grad.detach().to("cpu", torch.float64), stats, gamma, rounded_cotangent(p)


def check_moments(subject, case, reference):
    p = case.problem
    dx, stats, gamma, g = _gradient_and_closed_form(subject, p)
    ctx = context(subject, p)
    dx_tol = elementwise_tolerance(p.dtype, stats, g, gamma)
    # a channel whose exact dl/dx may pass the dtype's range holds ±inf rounded: its sums
    # read inf - inf, so its entries are checked one by one instead
    held = ~channels_past_the_range("dl/dx", dx, closed_form(stats, g, gamma), dx_tol,
                                    finfo(p.dtype).max, ctx)
    sum_tol = gradient_sum_tolerance(p.dtype, stats, g, gamma)
    assert_close("sum_i dl/dx_i", per_channel_sum(dx)[held], torch.zeros_like(sum_tol)[held],
                 sum_tol[held], ctx)
    eps, std = p.options.eps, stats.std.flatten()
    moment_tol = (per_channel_sum(stats.xhat.abs() * dx_tol
                                  + reference_xhat_error(stats) * dx.abs())
                  + radial_reference_error(stats, g, gamma, eps) / std)
    expected = radial_value(stats, g, gamma, eps) / std
    assert_close("sum_i x̂_i dl/dx_i", per_channel_sum(stats.xhat * dx)[held], expected[held],
                 moment_tol[held], ctx)


INPUT_GRADIENT_SUMS_TO_ZERO = register(Invariant(
    id="input-gradient-sums-to-zero",
    title="The input gradient has zero sum and is orthogonal to x̂ (up to ε)",
    family="backward",
    statement=(r"\sum_{i\in c} \frac{\partial \ell}{\partial x_i} = 0, \qquad "
               r"\sum_{i\in c} \hat x_i \frac{\partial \ell}{\partial x_i} = "
               r"\frac{\gamma_c}{s_c}\,\frac{\varepsilon}{\sigma_c^2+\varepsilon}"
               r"\sum_{i\in c} g_i \hat x_i"),
    why=("BN(x) is unchanged by adding a constant to a channel, and (for ε → 0) by scaling "
         "it: the input gradient is orthogonal to both directions, 1 and x (equivalently x̂). "
         "The first moment is the input-side reading of zero-bias-gradient, summed here in "
         "float64 from x.grad itself; the second is new: it catches a backward pass that "
         "treats Var[x] as a constant (x̂ᵀdx = (γ/s)Σgx̂ instead), which the first cannot."),
    source="Ioffe & Szegedy (2015), sections 2 and 3 (backward pass of Algorithm 1)",
    applies=("training mode; every rank, dtype, layout and option; any upstream gradient g; "
             "a channel whose exact dl/dx plus its tolerance may pass the dtype's largest "
             "value (half types: a constant channel and a small eps give dl/dx ~ g/√ε) is "
             "checked entry by entry as in input-gradient-closed-form instead"),
    tolerance=("the sum: " + GRADIENT_SUM.words + "; the x̂-moment: Σ|x̂ᵢ| times the elementwise "
               "input-gradient tolerance of input-gradient-closed-form, plus the float64 x̂'s "
               "own error ρ₆₄(1 + |μ|/s + |x̂|) times |dxᵢ| and in the expected value"),
    tolerance_formula=(GRADIENT_SUM.formula + r",\quad " + tex(r"\tau^{1}_c = \tau^{grad}_c,\quad \tau^{\hat x}_c = \sum_{i\in c}"
                       r"\Big(|\hat x_i|\,\tau^{dx}_i + \delta_i\big(|dx_i| + \tfrac{|\gamma|}{s}"
                       r"\tfrac{\varepsilon}{s^2}|g_i|\big)\Big),\ \delta_i = @{SAFETY}\rho_{64}"
                       r"(1+|\mu|/s+|\hat x_i|)")),
    check=check_moments,
))


def check_closed_form(subject, case, reference):
    p = case.problem
    dx, stats, gamma, g = _gradient_and_closed_form(subject, p)
    tol = elementwise_tolerance(p.dtype, stats, g, gamma)
    # dl/dx is in the input's dtype: where the exact gradient plus its bound passes the
    # range, ±inf (of that sign) is that gradient rounded
    assert_close("dl/dx", dx, closed_form(stats, g, gamma), tol, context(subject, p),
                 overflow=finfo(p.dtype).max)


INPUT_GRADIENT_CLOSED_FORM = register(Invariant(
    id="input-gradient-closed-form",
    title="The input gradient equals its closed form",
    family="backward",
    statement=(r"\frac{\partial \ell}{\partial x_i} = \frac{\gamma}{s}\Big(g_i - \bar g - "
               r"\hat x_i\,\overline{g\hat x}\Big),\quad s = \sqrt{\sigma^2+\varepsilon}"),
    why=("Differentiating x̂ = (x − E[x])/s through E[x] and Var[x] gives this formula; the "
         "float64 closed form is computed from the same rounded input and upstream gradient "
         "the subject sees, so the only difference is the subject's rounding."),
    source="Ioffe & Szegedy (2015), section 3, the backward pass below Algorithm 1",
    applies="training mode; every rank, dtype, layout and option; any upstream gradient g",
    tolerance=("elementwise: with ρ = (u_acc k(n) + u_out)(1 + |μ|/s), each term of the "
               "bracket and 1/s is off by ρ relative, the means ḡ and c̄ = mean(g x̂) by ρ "
               "times the mean of their absolute summands, x̂ᵢ by ρ(1 + |x̂ᵢ|); where the "
               "bound passes the dtype's largest value, ±inf of the exact value's sign is "
               "within it (that value rounded)"),
    tolerance_formula=(tex(r"\tau^{dx}_i = @{SAFETY}\rho\,\frac{|\gamma|}{s}\Big(|g_i| + |\bar g| + "
                       r"\overline{|g|} + (1+2|\hat x_i|)|\overline{g\hat x}| + |\hat x_i|"
                       r"(\overline{|g|} + \overline{|g\hat x|})\Big) + \mathrm{tiny}")),
    check=check_closed_form,
))


def check_parameter_gradients(subject, case, reference):
    p = case.problem
    module = build(subject, p)
    trainable_affine(module, subject)
    input_gradient(subject, p, module)
    stats = statistics(p.values, p.options.eps)
    g = rounded_cotangent(p)
    ctx = context(subject, p)
    beta_tol, gamma_tol = parameter_gradient_tolerances(p.dtype, stats, g)
    overflow = finfo(p.dtype).max
    assert_close("dl/dbeta", module.bias.grad, per_channel_sum(g), beta_tol, ctx, overflow=overflow)
    assert_close("dl/dgamma", module.weight.grad, per_channel_sum(g * stats.xhat), gamma_tol, ctx,
                 overflow=overflow)


PARAMETER_GRADIENTS = register(Invariant(
    id="parameter-gradients",
    title="Gradients of the affine parameters",
    family="backward",
    statement=(r"\frac{\partial \ell}{\partial \gamma_c} = \sum_{i\in c} g_i \hat x_i, \qquad "
               r"\frac{\partial \ell}{\partial \beta_c} = \sum_{i\in c} g_i"),
    why=("y = γ x̂ + β is linear in γ and β with coefficients x̂ and 1, so their gradients "
         "are the channel sums of g x̂ and of g."),
    source="Ioffe & Szegedy (2015), section 3, the backward pass below Algorithm 1",
    applies=("training mode", AFFINE, "every rank, dtype and layout"),
    tolerance=("the l1 mass of each sum times its relative error u_acc k(n) + u_out; for γ "
               "each x̂ᵢ also carries (1 + |μ|/s + |x̂ᵢ|) of it; where a bound passes the "
               "dtype's largest value, an overflow to ±inf is within it"),
    tolerance_formula=(tex(r"\tau^\beta_c = @{SAFETY}(u_{acc}k(n)+u_{out})\sum_{i\in c}|g_i|,\quad "
                       r"\tau^\gamma_c = @{SAFETY}(u_{acc}k(n)+u_{out})\sum_{i\in c}|g_i|"
                       r"(1 + |\mu_c|/s_c + |\hat x_i|)")),
    check=check_parameter_gradients,
))
