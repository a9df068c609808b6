"""Gradient descent on a bias before the batch norm, as recorded: the trajectory and the
bounds on its drift, shared by the single-process and the distributed drift invariants."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bn_invariants.invariants.assertions import assert_close, assert_finite
from bn_invariants.invariants.bounds import (SAFETY, Bound, tex, gradient_sum_tolerance,
                                             gradient_terms_in_range, output_tolerance,
                                             shifted_input_rounding)
from bn_invariants.invariants.cases import add_per_channel
from bn_invariants.invariants.reference import statistics
from bn_invariants.strategies import finfo, unit_roundoff


@dataclass(frozen=True)
class Trajectory:
    """b_t (steps+1, C) and the loss l_t (steps+1,) of gradient descent on b, in float64."""

    bias: torch.Tensor
    loss: torch.Tensor


DRIFT = Bound(
    words=("step by step, failing at the first step that moves: each |b_t − b_{t−1}| within η "
           "times the zero-bias-gradient tolerance of the input that step saw (x + b_0 for the "
           "first), plus one rounding of the update, never summed over steps; the loss may "
           "change by twice the g-weighted output tolerance plus the rounding of x + b_0 and "
           "x + b_T to the dtype. A channel whose exact dl/dxᵢ may pass the dtype's range "
           "(float16, eps = 1e-7) leaves the check from that step on: its dl/db meets ±inf "
           "(inf − inf reads NaN), and the loss is then not compared"),
    formula=tex(r"|b_t - b_{t-1}|_c \le \eta\,\tau^{grad}_c(x+b_{t-1}) + @{SAFETY}u|b_{t,c}|\ "
                r"(t = 1..T),\quad |\ell_T-\ell_0| \le \sum_i |g_i|\,\big(2\tau^{out}_i + "
                r"\tau^{round}_i(x+b_0) + \tau^{round}_i(x+b_T)\big)"),
)


def seen_statistics(problem, bias: torch.Tensor):
    """The statistics of the input a step saw, fl(x + b) for the bias ``bias`` it started from."""
    seen = add_per_channel(problem.values, bias).to(problem.torch_dtype).double()
    return statistics(seen, problem.options.eps)




def check_trajectory(p, path: Trajectory, gamma, beta, steps: int, lr: float, ctx: str) -> None:
    """The drift checks of a recorded trajectory on the problem's whole batch, step by
    step, failing at the first step that moves: each |b_t - b_{t-1}| within lr times the
    gradient bound of the input that step saw (the first step's is x + b_0 itself) plus one
    rounding of the update, an overflow to ±inf only where that bound passes the dtype;
    then l(b_T) - l(b_0) within the output tolerance and the rounding of x + b_T.  Bounds
    are never summed over steps, so a bias that drifts cannot buy a looser bound by moving."""
    g = p.cotangent().to(p.torch_dtype).double()
    u, info = unit_roundoff(p.dtype), finfo(p.dtype)
    held = torch.ones(p.num_features, dtype=torch.bool)
    for t in range(1, steps + 1):
        seen = seen_statistics(p, path.bias[t - 1])
        held &= gradient_terms_in_range(p.dtype, seen, g, gamma)  # once out, out for good
        before, after = path.bias[t - 1][held], path.bias[t][held]
        # lr times the zero-bias-gradient bound at the input this step saw
        bound = lr * gradient_sum_tolerance(p.dtype, seen, g, gamma)[held]
        if not bool(torch.isfinite(after).all()):
            overflowed = not bool(after.isnan().any())
            if overflowed and float(bound.max()) > info.max:
                return  # the step's bound on lr·dl/db passes the dtype: ±inf is within it
            assert_finite(f"b_{t}", after, f"{ctx}; b_{t - 1} finite")
        tol = bound + SAFETY * u * after.abs() + info.tiny
        assert_close(f"b_{t} - b_{t - 1}", after - before, torch.zeros_like(tol), tol,
                     f"{ctx}; step {t} of {steps}" + ("" if bool(held.all()) else
                     f"; channels {held.nonzero().flatten().tolist()}, the others past the range"))
    if not bool(held.all()):
        return  # a channel past the range may hold ±inf or NaN: the loss says nothing
    x0 = add_per_channel(p.values, path.bias[0]).to(p.torch_dtype).double()
    stats = statistics(x0, p.options.eps)
    out_tol = output_tolerance(p.dtype, stats, gamma, beta)
    rounding = sum(shifted_input_rounding(p.dtype, add_per_channel(p.values, b), stats, gamma)
                   for b in (path.bias[0], path.bias[-1]))
    loss_tol = (g.abs() * (2 * out_tol + rounding)).sum()
    assert_close(f"l(b_{steps}) - l(b_0)", path.loss[-1] - path.loss[0],
                 torch.zeros(()), loss_tol, ctx)
