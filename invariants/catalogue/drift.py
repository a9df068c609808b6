"""Gradient descent on a bias before the batch norm: no drift when done properly."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from bn_invariants.invariants.params import Steps, drawn
from bn_invariants.invariants.step import affine_of, bias_gradient_of, build, context, shifted_leaf
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.trajectory import DRIFT, Trajectory, check_trajectory


def bias_descent(subject, problem, *, steps: int, lr: float, module=None) -> Trajectory:
    """Run b <- b - lr * dl/db for ``steps`` steps, from b = 0, on
    l(b) = sum(g * BN(x + b)) with a fixed upstream gradient g; record b and l."""
    module = module or build(subject, problem)
    x = problem.input()
    g = problem.cotangent().to(problem.torch_dtype).to(problem.device)
    bias = torch.zeros(problem.num_features, dtype=problem.torch_dtype, device=problem.device)
    biases, losses = [], []
    for step in range(steps + 1):
        shifted = shifted_leaf(x, bias, problem.layout)
        loss = (module(shifted).double() * g.double()).sum()
        biases.append(bias.detach().to("cpu", torch.float64).clone())
        losses.append(loss.detach().cpu())
        if step == steps:
            break
        (dx,) = torch.autograd.grad(loss, shifted, allow_unused=True)
        bias = bias - lr * bias_gradient_of(dx, context(subject, problem))
    return Trajectory(torch.stack(biases), torch.stack(losses))


def check(subject, case, reference):
    p = case.problem
    steps, lr = case.params.steps, case.params.lr
    module = build(subject, p)
    path = bias_descent(subject, p, steps=steps, lr=lr, module=module)
    gamma, beta = affine_of(module, p.values.dim())
    check_trajectory(p, path, gamma, beta, steps, lr,
                     f"{context(subject, p)}; {steps} steps of lr {lr}")


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
    tolerance=DRIFT.words,
    tolerance_formula=DRIFT.formula,
    params=drawn(
        Steps, steps=st.integers(1, 6), lr=st.sampled_from((1.0, 0.1, 10.0))),
    check=check,
))
