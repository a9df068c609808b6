"""Gradient descent on a bias before the batch norm: no drift when done properly."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from bn_invariants.invariants.assertions import assert_close, assert_finite
from bn_invariants.invariants.cases import add_per_channel, draw_cases
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import channel_view, statistics
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import SAFETY, gradient_sum_tolerance, output_tolerance
from bn_invariants.strategies import apply_layout, finfo, unit_roundoff


@dataclass(frozen=True)
class Trajectory:
    """b_t (steps+1, C) and the loss l_t (steps+1,) of gradient descent on b, in float64."""

    bias: torch.Tensor
    loss: torch.Tensor


def bias_descent(subject, problem, *, steps: int, lr: float, module=None) -> Trajectory:
    """Run b <- b - lr * dl/db for ``steps`` steps, from b = 0, on
    l(b) = sum(g * BN(x + b)) with a fixed upstream gradient g; record b and l."""
    module = module or build(subject, problem)
    x = problem.input()
    g = problem.cotangent().to(problem.torch_dtype).to(problem.device)
    bias = torch.zeros(problem.num_features, dtype=problem.torch_dtype,
                       device=problem.device, requires_grad=True)
    biases, losses = [], []
    for step in range(steps + 1):
        y = module(apply_layout(x + channel_view(bias, x.dim()), problem.layout))
        loss = (y.double() * g.double()).sum()
        biases.append(bias.detach().to("cpu", torch.float64).clone())
        losses.append(loss.detach().cpu())
        if step == steps:
            break
        (grad,) = torch.autograd.grad(loss, bias)
        with torch.no_grad():
            bias -= lr * grad
    return Trajectory(torch.stack(biases), torch.stack(losses))


def _step_tolerances(problem, path, gamma, g):
    """Per-step bound on |dl/db|, each from the statistics of the input x + b_t it saw."""
    bounds = []
    for b in path.bias[:-1]:
        seen = add_per_channel(problem.values, b).to(problem.torch_dtype).double()
        stats = statistics(seen, problem.options.eps)
        bounds.append(gradient_sum_tolerance(problem.dtype, stats.n, stats.mean, stats.std,
                                             stats.xhat, g, gamma))
    return torch.stack(bounds)


def check(subject, case):
    p = case.problem
    steps, lr = case.params["steps"], case.params["lr"]
    module = build(subject, p)
    path = bias_descent(subject, p, steps=steps, lr=lr, module=module)
    gamma, beta = affine_of(module, p.values.dim())
    g = p.cotangent().to(p.torch_dtype).double()
    ctx = f"{context(subject, p)}; {steps} steps of lr {lr}"
    finite = torch.isfinite(path.bias).all(1)
    if not bool(finite.all()):
        t = int((~finite).nonzero()[0])  # b_0 = 0, so t >= 1 and b_0..b_{t-1} are finite
        bound = lr * _step_tolerances(p, Trajectory(path.bias[:t + 1], path.loss[:t + 1]),
                                      gamma, g)[-1]
        overflowed = not bool(path.bias[t].isnan().any())
        if overflowed and float(bound.max()) > finfo(p.dtype).max:
            return  # step t's bound on lr·dl/db passes the dtype: ±inf is within it
        assert_finite("b_t (one row per step)", path.bias, ctx)
    update_rounding = SAFETY * unit_roundoff(p.dtype) * path.bias[1:].abs().sum(0)
    moved = lr * _step_tolerances(p, path, gamma, g).sum(0) + update_rounding
    assert_close(f"b_{steps} - b_0", path.bias[-1] - path.bias[0], torch.zeros_like(moved), moved, ctx)
    stats = statistics(p.values, p.options.eps)
    out_tol = output_tolerance(p.dtype, stats.n, stats.mean, stats.std, stats.xhat, gamma, beta)
    drift_rounding = SAFETY * unit_roundoff(p.dtype) * moved.abs().max() / stats.std.min()
    loss_tol = 2 * (g.abs() * (out_tol + drift_rounding)).sum()
    assert_close(f"l(b_{steps}) - l(b_0)", path.loss[-1] - path.loss[0],
                 torch.zeros(()), loss_tol, ctx)


NO_BIAS_DRIFT = register(Invariant(
    id="no-bias-drift",
    title="No drift of a bias before the normalisation under gradient descent",
    family="backward",
    statement=(r"b_{t+1} = b_t - \eta\,\partial\ell/\partial b \;\Rightarrow\; b_T = b_0 "
               r"\text{ and } \ell(b_T) = \ell(b_0)"),
    why=("With the gradient taken through E[x], dl/db = 0: b stays where it is and the loss "
         "does not change. Under the naive rule the step is Δb = −η(γ/s)Σg ≠ 0 while x̂, "
         "the output and the loss stay fixed, so the same step repeats: b_t = b_0 + tΔb "
         "grows without bound and nothing is learned."),
    source="Ioffe & Szegedy (2015), section 2",
    applies="training mode; every rank, dtype, layout and option; 1 to 6 steps",
    tolerance=("b may move by η times the sum over steps of the zero-bias-gradient tolerance "
               "of the input x + b_t each step saw, plus the rounding of each update; the loss "
               "may change by twice the g-weighted output tolerance plus the rounding of x + b_t"),
    tolerance_formula=(r"|b_T - b_0|_c \le \eta\sum_{t<T}\tau^{grad}_c(x+b_t) + 4u\sum_{t\ge1}|b_{t,c}|,"
                       r"\quad |\ell_T-\ell_0| \le 2\sum_i |g_i|\,(\tau^{out}_i + "
                       r"4u\max_c|b_T-b_0|_c/\min_c s_c)"),
    cases=lambda space: draw_cases(space, st.fixed_dictionaries({
        "steps": st.integers(1, 6), "lr": st.sampled_from((1.0, 0.1, 10.0))})),
    check=check,
))
