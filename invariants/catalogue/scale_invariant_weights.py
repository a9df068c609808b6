"""Scale-invariant weights: BN(W u) = BN((aW) u) (Ioffe & Szegedy 2015, section 3.3).

A weight W (C, K) mixes the problem's input u (N, K, *) into x = W u (a 1x1
convolution over the channel dimension, so every rank works) and the subject
normalises x in training mode; l = sum(g * BN(W u)).  Since dl/dW_ck = sum_i
dl/dx_ci u_ki, the identities of the input gradient carry over to W.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from hypothesis import reject, strategies as st

from bn_invariants.invariants.params import Scale, drawn
from bn_invariants.invariants.bounds import tex
from bn_invariants.invariants.mixing import (backward_products_in_range, gradient_terms, mix,
                                             mixing_weight,
                                             rows_past_the_range, weight_gradient,
                                             weight_gradient_tolerance)
from bn_invariants.invariants.bounds import radial_tolerance
from bn_invariants.invariants.assertions import assert_close, assert_finite_where
from bn_invariants.invariants.reference import radial_value
from bn_invariants.invariants.bounds import radial_reference_error
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import reduce_dims
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import SAFETY
from bn_invariants.strategies import accumulation_dtype, finfo, unit_roundoff













def check_radial(subject, case, reference):
    p = case.problem
    eps = p.options.eps
    module = build(subject, p)
    weight = mixing_weight(p)
    grad, x = weight_gradient(subject, p, weight, module=module)
    gamma, _ = affine_of(module, x.dim())
    stats, g, dx, dx_tol = gradient_terms(p, x, eps, gamma)
    if not backward_products_in_range(p, dx, dx_tol):
        reject()  # only when it fails: assume() warns outside a test
    magnitude = mix(weight.abs(), p.values.abs())
    tol = radial_tolerance(p, magnitude, dx, dx_tol, p.num_features)
    tol = tol + radial_reference_error(stats, g, gamma, eps)
    ctx = context(subject, p)
    held = ~rows_past_the_range(p, grad, dx, dx_tol, ctx)  # those rows checked entry by entry
    if not bool(held.all()):
        ctx = f"{ctx}; channels {held.nonzero().flatten().tolist()}, the others past the range"
    assert_close("<W_c, dl/dW_c>", (weight * grad).sum(1)[held],
                 radial_value(stats, g, gamma, eps)[held], tol[held], ctx)


WEIGHT_GRADIENT_RADIAL = register(Invariant(
    id="weight-gradient-radial",
    title="The weight gradient is orthogonal to the weight (up to ε)",
    family="scale-invariant weights",
    statement=(r"\Big\langle W_c, \frac{\partial \ell}{\partial W_c}\Big\rangle = \gamma_c\,"
               r"\frac{\varepsilon}{\sigma_c^2+\varepsilon}\sum_{i\in c} g_i\hat x_i "
               r"\;\xrightarrow{\;\varepsilon\to 0\;}\; 0"),
    why=("BN((aW)u) = BN(Wu) for every a > 0 when ε = 0, so the loss is constant along the "
         "ray through W and its gradient has no radial component. With ε > 0 the radial "
         "part is Σᵢ xᵢ ∂l/∂xᵢ = s x̂ᵀdx = γ(ε/s²)Σ g x̂ exactly. A backward pass that holds "
         "Var[x] out gets γΣ g x̂ instead."),
    source="Ioffe & Szegedy (2015), section 3.3",
    applies=("training mode; every rank (x = W u over the channel dimension), dtype, layout "
             "and option; cases where a dl/dx_ci or a product dl/dx_ci u_ki of the mixing's backward, dl/dx "
             "being any within its tolerance, would pass the dtype's range / SAFETY are "
             "rejected (half types form them in "
             "the dtype: their exact sum is finite, but inf - inf reads NaN); a row of dl/dW "
             "whose exact value plus its tolerance passes the "
             "dtype's largest value (float16 over long reductions: dl/dW sums n products) is "
             "checked entry by entry instead, ±inf being that gradient rounded"),
    tolerance=("per channel: the input-gradient elementwise tolerance weighted by |W||u|, plus "
               "the rounding of the backward's reduction over n and of the forward's "
               "x = fl(W u) (reduction over K), each (u_acc k + u_out) times Σ|dx||W||u|, "
               "plus the absolute rounding u_sub of a subnormal x; a row past the range: "
               "each entry within τ^W = Σᵢ(τ^dx_i + SAFETY(u_acc k(n) + u_out)|dx_i|)|u_ki| "
               "of the exact Σᵢ dl/dx_i u_ki, or ±inf where that bound passes the range"),
    tolerance_formula=(tex(r"\tau_c = \sum_{i\in c} (|W||u|)_i\big(\tau^{dx}_i + @{SAFETY}(\rho_n + \rho_K)"
                       r"|dx_i|\big) + @{SAFETY}u_{sub}\sum_{i\in c}|dx_i|,\ \rho_m = u_{acc}k(m) + u_{out}")),
    check=check_radial,
))


def _exactly_scaled(x1, x2, c, dtype) -> bool:
    """Whether x2 = c x1 bitwise with no subnormal value: then every scale-equivariant
    operation of a batch norm (sums, means, sqrt of var, products) scales exactly."""
    tiny = finfo(dtype).tiny
    normal = ((x1 == 0) | (x1.abs() >= tiny)).all() and ((x2 == 0) | (x2.abs() >= tiny)).all()
    return bool(torch.equal(x2, c * x1)) and bool(normal)


def _moved_gradient(p, stats, g, gamma, delta):
    """Bound on |exact dl/dW(x1) - exact dl/dW(x2)| when |x1 - x2| <= delta per channel:
    1/s moves by delta/s relative, x̂ by delta (2 + |x̂|)/s, c̄ by that times mean|g|."""
    dims = reduce_dims(g.dim())
    xa = stats.xhat.abs()
    g_mean, gx_mean = g.mean(dims, keepdim=True), (g * stats.xhat).mean(dims, keepdim=True)
    spread = (g.abs() * (2 + xa)).mean(dims, keepdim=True)
    scale = (1.0 if gamma is None else gamma.abs()) / stats.std * delta / stats.std
    per_x = SAFETY * scale * (g.abs() + g_mean.abs() + (2 + 2 * xa) * gx_mean.abs() + xa * spread)
    return torch.einsum("nc...,nk...->ck", per_x, p.values.abs())


def _in_range(p, x, stats, dx, dx_tol, c: float) -> bool:
    """Whether x, its centred squares summed over n, dl/dx and sum |dl/dx||u| all stay a
    factor SAFETY inside the dtype's range in both runs: at x and at c x (dl/dx over c).
    dl/dx is any the subject may compute, within ``dx_tol`` of the exact ``dx``."""
    top, acc_top = finfo(p.dtype).max / SAFETY, finfo(accumulation_dtype(p.dtype)).max / SAFETY
    up, down = max(1.0, c), max(1.0, 1.0 / c)
    reach = dx.abs() + dx_tol
    centred = float((up * (x - stats.mean).abs().max()) ** 2) * stats.n
    mass = float(torch.einsum("nc...,nk...->ck", reach, p.values.abs()).max())
    return (up * float(x.abs().max()) <= top and centred <= acc_top
            and float(reach.max()) * down <= top and mass * down <= top)


def _subnormal_gradients(p, grad1, c: float) -> torch.Tensor:
    """Where some dl/dx or dl/dW is (or, scaled by 1/c, becomes) subnormal, its rounding is
    absolute, at most the subnormal spacing, and does not scale: dl/dW moves by that
    times sum_i |u_ki| in either run, and its final rounding may land on the neighbouring
    value, one u_out |dl/dW| away.  Once the two runs differ at all, every later rounding
    may differ too, so the callers add the full weight-gradient tolerance of both."""
    spacing = finfo(p.dtype).tiny * finfo(p.dtype).eps
    u_mass = p.values.abs().sum(reduce_dims(p.values.dim())).reshape(1, -1)
    return SAFETY * (1 + c) * spacing * (1 + u_mass) + 2 * unit_roundoff(p.dtype) * grad1.abs()


def check_inverse_scale(subject, case, reference):
    p, c = case.problem, case.params.scale
    eps = p.options.eps
    module = build(subject, p)
    grad1, x1 = weight_gradient(subject, p, mixing_weight(p), module=module)
    gamma, _ = affine_of(module, x1.dim())
    stats1, _, dx1, dx_tol1 = gradient_terms(p, x1, eps, gamma)
    if not _in_range(p, x1, stats1, dx1, dx_tol1, c):
        c = 1 / c
        if not _in_range(p, x1, stats1, dx1, dx_tol1, c):
            reject()  # only when it fails: assume() warns outside a test
    # dl/dW(W) in range (above): a non-finite one is the subject's, never a bound's input
    assert_finite_where("dl/dW(W)", grad1, torch.einsum("nc...,nk...->ck", dx1, p.values),
                        context(subject, p))
    scaled = build(subject, p, options=replace(p.options, eps=c * c * eps))
    grad2, x2 = weight_gradient(subject, p, mixing_weight(p, c), module=scaled)
    near_subnormal = SAFETY * max(1.0, c) * finfo(p.dtype).tiny
    # the subject's dl/dx, within dx_tol1 of the exact one, may be the one near subnormal
    subnormal = bool(((dx1.abs() - dx_tol1) < near_subnormal).any()
                     or (grad1.abs() < near_subnormal).any())
    exact = _exactly_scaled(x1, x2, c, p.dtype) and not subnormal
    tol = torch.zeros_like(grad1)
    if not exact:
        _, g, _, tol1 = gradient_terms(p, x1, eps, gamma)
        _, _, dx2, tol2 = gradient_terms(p, x2, c * c * eps, gamma)
        delta = (x1 - x2 / c).abs().amax(reduce_dims(x1.dim()), keepdim=True)
        tol = (_subnormal_gradients(p, grad1, c) + weight_gradient_tolerance(p, dx1, tol1)
               + c * weight_gradient_tolerance(p, dx2, tol2)
               + _moved_gradient(p, stats1, g, gamma, delta))
    # dl/dW(cW) is admitted anywhere within tol/c of grad1/c: past the dtype's largest
    # value, its ±inf is that rounded, and c times it passes c times that value
    assert_close(f"{c:g} * dl/dW({c:g} W; {c * c:g} eps)", c * grad2, grad1, tol,
                 f"{context(subject, p)}; {'exact' if exact else 'rounded'} scaling",
                 overflow=c * float(finfo(p.dtype).max))


WEIGHT_GRADIENT_INVERSE_SCALE = register(Invariant(
    id="weight-gradient-inverse-scale",
    title="Scaling the weight by c scales its gradient by 1/c",
    family="scale-invariant weights",
    statement=(r"\frac{\partial \ell_{c^2\varepsilon}}{\partial W}\Big|_{cW} = "
               r"\frac{1}{c}\,\frac{\partial \ell_{\varepsilon}}{\partial W}\Big|_{W}"
               r"\quad(\text{at } \varepsilon = 0:\ \nabla\ell(cW) = \nabla\ell(W)/c)"),
    why=("At ε = 0, l(cW) = l(W) for every c > 0; differentiating in W gives c ∇l(cW) = "
         "∇l(W): larger weights get smaller gradients, which stabilises training. For ε > 0 "
         "the same holds exactly once ε is scaled with the variance, by c² (torch refuses "
         "ε = 0 in training). With c a power of two every rounding scales exactly, so the "
         "check is bitwise. The naive rules satisfy it too (their gradient is also "
         "homogeneous); it catches ε added in the wrong place and any step that is not "
         "scale-equivariant."),
    source="Ioffe & Szegedy (2015), section 3.3",
    applies=("training mode; every rank, dtype, layout, regime and option; c in "
             "{1/4, 1/2, 2, 4, 8}, or its reciprocal where either run (at W or at cW) would "
             "take x, Σ(x − μ)², dl/dx or Σ|dl/dx||u| past the dtype's range / SAFETY, dl/dx "
             "being any within its tolerance (neither: the case is rejected)"),
    tolerance=("bitwise when x = W u scales exactly and no x, dl/dx or dl/dW is (or becomes) "
               "subnormal, dl/dx being any within its tolerance; otherwise the absolute rounding of subnormal gradients (the spacing "
               "u_sub times Σ|u|, plus the u_out|dl/dW| it may flip), the weight-gradient "
               "tolerance of both runs, and the change of the exact gradient when x moves by "
               "the difference δ of the two roundings; where that band passes the dtype's "
               "largest value, ±inf of its sign (dl/dW(cW) rounded)"),
    tolerance_formula=(tex(r"\tau_{ck} = [\text{not exact}]\big(@{SAFETY}(1+c)\,u_{sub}(1+\sum_i|u_{ki}|) "
                       r"+ 2u_{out}|\partial_W\ell| + \tau^{W}_{ck}(x) + c\,\tau^{W}_{ck}(cx) + "
                       r"\Delta_{ck}(\delta)\big)")),
    params=drawn(
        Scale, scale=st.sampled_from((2.0, 0.5, 4.0, 0.25, 8.0))),
    check=check_inverse_scale,
))
