"""Gradient descent on a bias before the batch norm, as recorded: the trajectory and the
bounds on its drift, shared by the single-process and the distributed drift invariants."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bn_invariants.invariants.assertions import assert_close, assert_finite
from bn_invariants.invariants.bounds import SAFETY, gradient_sum_tolerance, output_tolerance
from bn_invariants.invariants.cases import add_per_channel
from bn_invariants.invariants.reference import statistics
from bn_invariants.strategies import finfo, unit_roundoff


@dataclass(frozen=True)
class Trajectory:
    """b_t (steps+1, C) and the loss l_t (steps+1,) of gradient descent on b, in float64."""

    bias: torch.Tensor
    loss: torch.Tensor


def step_tolerances(problem, path, gamma, g):
    """Per-step bound on |dl/db|, each from the statistics of the input x + b_t it saw."""
    bounds = []
    for b in path.bias[:-1]:
        seen = add_per_channel(problem.values, b).to(problem.torch_dtype).double()
        stats = statistics(seen, problem.options.eps)
        bounds.append(gradient_sum_tolerance(problem.dtype, stats, g, gamma))
    return torch.stack(bounds)


def check_trajectory(p, path: Trajectory, gamma, beta, steps: int, lr: float, ctx: str) -> None:
    """The drift checks of a recorded trajectory on the problem's whole batch:
    b_T - b_0 and l(b_T) - l(b_0) within their bounds (an overflow to ±inf only
    where a step's bound passes the dtype)."""
    g = p.cotangent().to(p.torch_dtype).double()
    finite = torch.isfinite(path.bias).all(1)
    if not bool(finite.all()):
        t = int((~finite).nonzero()[0])  # b_0 = 0, so t >= 1 and b_0..b_{t-1} are finite
        bound = lr * step_tolerances(p, Trajectory(path.bias[:t + 1], path.loss[:t + 1]),
                                      gamma, g)[-1]
        overflowed = not bool(path.bias[t].isnan().any())
        if overflowed and float(bound.max()) > finfo(p.dtype).max:
            return  # step t's bound on lr·dl/db passes the dtype: ±inf is within it
        assert_finite("b_t (one row per step)", path.bias, ctx)
    update_rounding = SAFETY * unit_roundoff(p.dtype) * path.bias[1:].abs().sum(0)
    moved = lr * step_tolerances(p, path, gamma, g).sum(0) + update_rounding
    assert_close(f"b_{steps} - b_0", path.bias[-1] - path.bias[0], torch.zeros_like(moved), moved, ctx)
    stats = statistics(p.values, p.options.eps)
    out_tol = output_tolerance(p.dtype, stats, gamma, beta)
    drift_rounding = SAFETY * unit_roundoff(p.dtype) * moved.abs().max() / stats.std.min()
    loss_tol = 2 * (g.abs() * (out_tol + drift_rounding)).sum()
    assert_close(f"l(b_{steps}) - l(b_0)", path.loss[-1] - path.loss[0],
                 torch.zeros(()), loss_tol, ctx)
