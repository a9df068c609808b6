"""Gradient descent on scale-invariant weights (Ioffe & Szegedy 2015, section 3.3): the
weight norm never shrinks, and a scale before the normalisation does not drift."""
from __future__ import annotations

from dataclasses import replace

import torch
from hypothesis import reject, strategies as st

from bn_invariants.invariants.params import Steps, drawn
from bn_invariants.invariants.bounds import tex
from bn_invariants.strategies import streams
from bn_invariants.invariants.assertions import assert_close, assert_finite
from bn_invariants.invariants.bounds import radial_reference_error
from bn_invariants.invariants.reference import radial_value
from bn_invariants.invariants.mixing import (POSITIVE_VARIANCE, backward_products_in_range,
                                             gradient_terms, mix, mixing_weight,
                                             rows_past_the_range, weight_gradient)
from bn_invariants.invariants.bounds import radial_tolerance
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import channel_view, statistics
from bn_invariants.invariants.preconditions import regime_in
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import SAFETY
from bn_invariants.strategies import apply_layout, finfo, unit_roundoff

EPS_FRACTION = 2.0 ** -20
"""eps for the norm identity, relative to the smallest channel variance of W u."""


def _radial_bound(p, x, magnitude, eps, gamma, forward_length):
    """(the exact radial term sum_i dl/dx_i x_i, its tolerance), (C,) each."""
    stats, g, dx, dx_tol = gradient_terms(p, x, eps, gamma)
    return (radial_value(stats, g, gamma, eps),
            radial_tolerance(p, magnitude, dx, dx_tol, forward_length)
            + radial_reference_error(stats, g, gamma, eps))


def check_norm(subject, case, reference):
    p, steps, lr = case.problem, case.params.steps, case.params.lr
    weight = mixing_weight(p)
    var = statistics(mix(weight, p.values), 0.0).var
    eps = EPS_FRACTION * float(var.min()) if float(var.min()) > 0 else p.options.eps
    module = build(subject, p, options=replace(p.options, eps=eps))
    ctx = f"{context(subject, p)}; eps={eps:.3g} for the norm; lr {lr}"
    u, u64 = unit_roundoff(p.dtype), unit_roundoff("float64")
    eta = None
    for step in range(steps):
        if float(mix(weight.abs(), p.values.abs()).max()) > finfo(p.dtype).max / 2:
            break  # W u would leave the dtype's range: no further step can be checked
        grad, x = weight_gradient(subject, p, weight, module=module)
        gamma, _ = affine_of(module, x.dim())
        _, _, dx, dx_tol = gradient_terms(p, x, eps, gamma)
        if not backward_products_in_range(p, dx, dx_tol):
            if step == 0:
                reject()  # only when it fails: assume() warns outside a test
            break  # the mixing's backward would overflow: no further step can be checked
        if bool(rows_past_the_range(p, grad, dx, dx_tol, f"{ctx}; step {step}").any()):
            break  # those rows checked entry by entry; W - eta dl/dW is no weight past the range
        assert_finite(f"dl/dW at step {step}", grad, ctx)  # the tolerance below scales with it
        radial, radial_tol = _radial_bound(p, x, mix(weight.abs(), p.values.abs()), eps, gamma,
                                           p.num_features)
        if eta is None:  # the first step moves W by lr of its norm (lr itself if dl/dW ~ 0)
            w_norm, g_norm = float(weight.norm()), float(grad.norm())
            eta = lr * w_norm / g_norm if g_norm > w_norm * 2.0 ** -20 else lr
        moved = weight - eta * grad
        new = moved.to(p.torch_dtype).double()
        before, after = (weight ** 2).sum(1), (new ** 2).sum(1)
        growth = eta ** 2 * (grad ** 2).sum(1)
        evaluation = u64 * p.num_features * (before + after + growth)
        tol = (2 * eta * (radial.abs() + radial_tol)
               + SAFETY * (2 * u * (moved ** 2).sum(1) + evaluation))
        assert_close(f"|W_{step + 1}|^2 - |W_{step}|^2 - eta^2 |grad|^2", after - before - growth,
                     torch.zeros_like(tol), tol, ctx)
        weight = new


WEIGHT_NORM_NONDECREASING = register(Invariant(
    id="weight-norm-nondecreasing",
    title="Gradient descent never shrinks a scale-invariant weight (as ε → 0)",
    family="scale-invariant weights",
    statement=(r"W_{t+1} = W_t - \eta\nabla_t \;\Rightarrow\; \|W_{t+1,c}\|^2 = \|W_{t,c}\|^2 + "
               r"\eta^2\|\nabla_{t,c}\|^2 - 2\eta\,\gamma_c\frac{\varepsilon}{\sigma_c^2+"
               r"\varepsilon}\sum_{i\in c} g_i\hat x_i"),
    why=("The gradient of a scale-invariant loss is orthogonal to W (weight-gradient-radial), "
         "so a step of plain gradient descent is a right-angled triangle: the norm can only "
         "grow, by η²‖∇‖². That growth is what makes the effective learning rate of a "
         "batch-normalised layer fall over training. ε breaks the orthogonality by "
         "O(ε/σ²), so ε is taken 2⁻²⁰ of the smallest variance."),
    source="Ioffe & Szegedy (2015), section 3.3",
    applies=("training mode with eps = 2⁻²⁰ min σ² of W u (the drawn eps where some σ² is 0)",
             regime_in(POSITIVE_VARIANCE, "regimes whose variance is clearly positive in every "
                       "dtype (not constant_channels or tiny_variance: there dl/dx ~ 1/√ε "
                       "overflows half types)"),
             "every rank, dtype, layout and option; 1 to 4 steps, the first moving W by lr ∈ "
             "{1/8, 1/2, 1} of its norm, stopping early once W u could pass half the dtype's "
             "largest value, or once a row of dl/dW may pass the dtype's range (float16 over "
             "long reductions; that step's gradient is checked entry by entry as in "
             "weight-gradient-radial) or a product dl/dx u of the mixing's backward may, dl/dx "
             "being any within its tolerance "
             "(the first step: the case is rejected)"),
    tolerance=("the radial term 2η|⟨W, ∇⟩| itself (its exact value, O(ε/σ²), plus the "
               "weight-gradient-radial tolerance), the rounding of W_{t+1} to the dtype "
               "(2u‖W_t − η∇‖²) and the float64 evaluation of the norms"),
    tolerance_formula=(tex(r"\tau_c = 2\eta\big(|r_c| + \tau^{rad}_c\big) + @{SAFETY}\big(2u\|W_t-\eta\nabla_t\|_c^2"
                       r" + u_{64}K(\|W_t\|_c^2+\|W_{t+1}\|_c^2+\eta^2\|\nabla_t\|_c^2)\big)")),
    params=drawn(Steps, steps=st.integers(1, 4), lr=st.sampled_from((0.5, 0.125, 1.0))),
    check=check_norm,
))


def scale_descent(subject, p, module, scale, *, steps: int, lr: float):
    """Gradient descent a <- fl(a - lr dl/da) on a per-channel scale a, x = fl(a u):
    yields (a_t, dl/da_t, x_t) as float64 for t < steps, then (a_steps, None, None)."""
    u = p.input()
    for _ in range(steps):
        a = scale.detach().clone().to(p.torch_dtype).to(p.device).requires_grad_(True)
        x = apply_layout(u * channel_view(a, u.dim()), p.layout)
        module(x).backward(p.cotangent().to(x.dtype).to(p.device))
        grad = a.grad.to("cpu", torch.float64)
        yield scale, grad, x.detach().to("cpu", torch.float64)
        scale = (scale - lr * grad).to(p.torch_dtype).double()
    yield scale, None, None


def initial_scale(p) -> torch.Tensor:
    """a_0: ±2**U(-1, 1) per channel, rounded to the dtype, float64."""
    gen = p.generator(streams.SCALE_DESCENT)
    c = p.num_features
    sign = torch.where(torch.rand(c, generator=gen) < 0.5, -1.0, 1.0).double()
    return (sign * 2.0 ** (2 * torch.rand(c, generator=gen, dtype=torch.float64) - 1)
            ).to(p.torch_dtype).double()


def a_view(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The per-channel scale a, broadcast against x."""
    return channel_view(a, x.dim())


def check_scale_drift(subject, case, reference):
    p, steps, lr = case.problem, case.params.steps, case.params.lr
    module = build(subject, p)
    ctx = f"{context(subject, p)}; {steps} steps of lr {lr}"
    a0 = initial_scale(p)
    drift_tol = torch.zeros_like(a0)
    for a, grad, x in scale_descent(subject, p, module, a0, steps=steps, lr=lr):
        if grad is None:
            assert_close(f"a_{steps} - a_0", a - a0, torch.zeros_like(a0), drift_tol, ctx)
            break
        gamma, _ = affine_of(module, x.dim())
        _, _, dx, dx_tol = gradient_terms(p, x, p.options.eps, gamma)
        reach = dx.abs() + dx_tol  # any dl/dx within its bound: itself and times u in range
        top = finfo(p.dtype).max / SAFETY
        if not (float(reach.max()) <= top and float((reach * x / a_view(a, x)).abs().max()) <= top):
            reject()  # only when it fails: assume() warns outside a test
        radial, tol = _radial_bound(p, x, x.abs(), p.options.eps, gamma, 1)
        expected, tol = radial / a, tol / a.abs()
        assert_close("dl/da", grad, expected, tol, ctx, overflow=float(finfo(p.dtype).max))
        if not bool(grad.isfinite().all()):
            break  # an overflow within the band: a step to ±inf drifts past checking
        drift_tol += lr * (expected.abs() + tol) + SAFETY * unit_roundoff(p.dtype) * a.abs()


VARIANCE_HELD_OUT_DRIFT = register(Invariant(
    id="variance-held-out-drift",
    title="No drift of a scale before the normalisation under gradient descent",
    family="scale-invariant weights",
    statement=(r"x = a u:\ \frac{\partial \ell}{\partial a_c} = \frac{\gamma_c}{a_c}\,"
               r"\frac{\varepsilon}{a_c^2\sigma_c^2+\varepsilon}\sum_{i\in c} g_i\hat x_i "
               r"\;\Rightarrow\; a_T \approx a_0"),
    why=("BN(a u) does not depend on a per-channel scale a when ε = 0, so gradient descent "
         "leaves a where it is and the loss where it is. The paper's “worse if it also "
         "scales” case: a backward pass that holds Var[x] out gets ∂l/∂a = (γ/a)Σ g x̂ ≠ 0 "
         "instead, and one that holds E[x] out as well gets (γ/a)(Σ g x̂ + (μ/s)Σ g): a drifts "
         "while the loss stays fixed."),
    source="Ioffe & Szegedy (2015), sections 2 and 3.3",
    applies=("training mode; every rank, dtype, layout and option; 1 to 4 steps; cases "
             "where a dl/dxᵢ or a product dl/dxᵢ·uᵢ of the backward, dl/dx being any within its "
             "tolerance, would pass the dtype's range / SAFETY are rejected (its exact sum is ~0, but "
             "half types overflow on the way); where dl/da's band passes the dtype's largest "
             "value, ±inf of its sign is that gradient rounded, and the descent stops there"),
    tolerance=("each step: the radial tolerance of weight-gradient-radial with |a u| for "
               "|W||u| and K = 1, over |a|; the drift: lr times the gradients' bounds plus one "
               "rounding of a per step"),
    tolerance_formula=(tex(r"\tau^{a}_c = \tau^{rad}_c/|a_c|,\quad |a_T - a_0|_c \le \sum_t "
                       r"\big(\eta(|r_{t,c}|/|a_{t,c}| + \tau^a_{t,c}) + @{SAFETY}u|a_{t,c}|\big)")),
    params=drawn(
        Steps, steps=st.integers(1, 4), lr=st.sampled_from((1.0, 0.1, 10.0))),
    check=check_scale_drift,
))
