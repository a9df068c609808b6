"""Zero gradient with respect to a bias added before the batch norm."""
from __future__ import annotations

import torch

from bn_invariants.strategies import streams
from bn_invariants.invariants.params import BiasOffset, drawn
from bn_invariants.invariants.assertions import InvariantViolation, assert_close
from bn_invariants.invariants.cases import per_channel_offsets, strengths
from bn_invariants.invariants.step import affine_of, bias_gradient_of, build, context, shifted_leaf
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import (GRADIENT_SUM, gradient_sum_tolerance,
                                             gradient_terms_in_range)
from bn_invariants.strategies import finfo


def bias_gradient(subject, problem, b: torch.Tensor, module=None):
    """(dl/db, x + b as float64, module) for l = sum(g * BN(x + b)), b a leaf (C,)."""
    module = module or build(subject, problem)
    bias = b.to(problem.torch_dtype).to(problem.device)
    shifted = shifted_leaf(problem.input(), bias, problem.layout)
    y = module(shifted)
    if not y.requires_grad:
        raise InvariantViolation(f"BN(x + b).requires_grad=False, but should be True: "
                                 f"the output must depend on b [{context(subject, problem)}]")
    g = problem.cotangent().to(y.dtype).to(problem.device)
    y.backward(g)
    return bias_gradient_of(shifted.grad, context(subject, problem)), shifted.detach(), module


def check(subject, case, reference):
    p = case.problem
    eps = p.options.eps
    b = per_channel_offsets(p, statistics(p.values, eps).std, case.params.bias, stream=streams.BIAS)
    grad, shifted, module = bias_gradient(subject, p, b)
    stats = statistics(shifted, eps)
    gamma, _ = affine_of(module, shifted.dim())
    g = p.cotangent().to(p.torch_dtype).double()
    tol = gradient_sum_tolerance(p.dtype, stats, g, gamma)
    held = gradient_terms_in_range(p.dtype, stats, g, gamma)
    assert_close("dl/db", grad.detach().cpu()[held], torch.zeros_like(tol)[held], tol[held],
                 context(subject, p), overflow=finfo(p.dtype).max)


ZERO_BIAS_GRADIENT = register(Invariant(
    id="zero-bias-gradient",
    title="Zero gradient with respect to a bias before the normalisation",
    family="backward",
    statement=(r"x = u + b \;\Rightarrow\; \frac{\partial \ell}{\partial b_c} = "
               r"\sum_{i \in c} \frac{\partial \ell}{\partial x_i} = 0 \text{ for every loss } \ell"),
    why=("BN(u + b) does not depend on b (shift invariance), so neither does any loss of it: "
         "its derivative in b is zero. A backward pass that treats E[x] as a constant (the "
         "naive rule) gets (γ/s)·Σ g instead, and moves b for nothing."),
    source="Ioffe & Szegedy (2015), section 2; the backward pass of section 3",
    applies="training mode; every rank, dtype, layout and option; any upstream gradient g",
    tolerance=(GRADIENT_SUM.words + "; where the bound passes the dtype's largest value, an "
               "overflow to ±inf is within it; a channel whose exact dl/dxᵢ may pass that "
               "value (its bound included) is not checked, as its sum meets ±inf"),
    tolerance_formula=GRADIENT_SUM.formula.replace(r"\tau^{grad}_c", r"\tau_c", 1),
    params=drawn(BiasOffset, bias=strengths()),
    check=check,
))
