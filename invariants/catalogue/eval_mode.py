"""Eval mode: a fixed per-channel affine map of the running statistics, with no side effects."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from bn_invariants.invariants.params import Sample, drawn
from bn_invariants.invariants.bounds import tex
from bn_invariants.strategies import finfo, streams
from bn_invariants.invariants.assertions import InvariantViolation, assert_close
from bn_invariants.invariants.step import drawn_running_stats, eval_map, set_running_stats
from bn_invariants.invariants.step import build, context
from bn_invariants.invariants.preconditions import TRACKED
from bn_invariants.invariants.registry import Invariant, register



def eval_module(subject, problem):
    """A fresh module of ``subject`` in eval mode, its running statistics set to drawn
    values (rv > 0) and num_batches_tracked to 3."""
    module = build(subject, problem)
    set_running_stats(module, subject, problem, *drawn_running_stats(problem, stream=streams.EVAL_RUNNING_STATS),
                      batches=3)
    return module.eval()


def check_affine_map(subject, case, reference):
    p = case.problem
    module = eval_module(subject, p)
    y = module(p.input())
    affine = eval_map(module, p.values.dim(), p.options.eps)
    assert_close("eval-mode output", y, affine(p.values), affine.tolerance(p.dtype, p.values),
                 f"{context(subject, p)}; y = a x + c, a = gamma/sqrt(rv + eps), c = beta - a rm",
                 overflow=finfo(p.dtype).max)  # an exact a x + c past the range rounds to ±inf


def state_of(module) -> dict:
    """Every entry of the module's state_dict, copied."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def check_no_state_change(subject, case, reference):
    p = case.problem
    module = eval_module(subject, p)
    before = state_of(module)
    module(p.input())
    after = state_of(module)
    ctx = f"{context(subject, p)}; one eval-mode forward pass"
    if set(before) != set(after):
        raise InvariantViolation(f"state_dict keys={sorted(after)}, but should be "
                                 f"{sorted(before)} [{ctx}]")
    for name, old in before.items():
        new = after[name]
        if old.dtype != new.dtype or old.shape != new.shape or not torch.equal(old, new):
            changed = (int((old != new).sum()) if old.shape == new.shape and old.dtype == new.dtype
                       else "all")
            raise InvariantViolation(f"{name}={new.flatten()[:4].tolist()}... ({changed} elements "
                                     f"changed), but should be unchanged "
                                     f"{old.flatten()[:4].tolist()}... [{ctx}]")


def sample_indices(batch: int, drawn: int) -> list[int]:
    """The first, the last and one drawn sample of a batch of ``batch``."""
    return sorted({0, batch - 1, drawn % batch})


def check_per_sample(subject, case, reference):
    p = case.problem
    module = eval_module(subject, p)
    x = p.input()
    y = module(x).detach()
    affine = eval_map(module, p.values.dim(), p.options.eps)
    tol = 2 * affine.tolerance(p.dtype, p.values)
    exact = affine(p.values)
    for i in sample_indices(p.shape[0], case.params.sample):
        alone, row = module(x[i:i + 1]).detach(), y[i:i + 1]
        assert_close(f"BN(x[{i}:{i + 1}])", alone, row, tol[i:i + 1],
                     f"{context(subject, p)}; sample {i} alone vs row {i} of the batch",
                     oracle=(exact[i:i + 1], tol[i:i + 1], finfo(p.dtype).max))


EVAL_AFFINE_MAP = register(Invariant(
    id="eval-affine-map",
    title="Eval mode is a fixed per-channel affine map of the running statistics",
    family="eval mode",
    statement=(r"\mathrm{BN}_{eval}(x)_i = a_c x_i + c_c,\quad a = \frac{\gamma}{\sqrt{\hat\sigma^2"
               r" + \epsilon}},\ c = \beta - a\,\hat\mu"),
    why=("At inference the batch norm uses the stored population estimates instead of the "
         "batch's statistics, so it collapses to one linear map per channel that can be "
         "folded into the previous layer. Using batch statistics, the wrong variance (e.g. "
         "without eps or its square root), or the default buffers in eval mode breaks it."),
    source="Ioffe & Szegedy (2015), section 3.1 and Algorithm 2",
    applies=("eval mode", TRACKED, "running statistics set to drawn values (rv > 0, on the "
             "batch's scale)", "every rank, dtype, layout and option"),
    tolerance=("the roundings of the map: 1/sqrt(rv + eps) formed in the accumulation dtype "
               "(SAFETY·u_acc), then up to five roundings of the elementwise stage in the input "
               "dtype (x − rm, a rounded, × 1/s, × γ, + β; six counted), each at most "
               "u_out·(|a|(|x| + |rm|) + |β|); plus the smallest normal (1 + |a|) for "
               "subnormal intermediates; where the bound passes the dtype's largest value, "
               "an overflow to ±inf is within it"),
    tolerance_formula=(tex(r"\tau_i = @{SAFETY}u_{acc}|a_c|(|x_i| + |\hat\mu_c|) + @{MAP_ROUNDINGS}u_{out}\big(|a_c|(|x_i| + "
                       r"|\hat\mu_c|) + |\beta_c|\big) + \text{tiny}\,(1+|a_c|)")),
    check=check_affine_map,
))


EVAL_NO_STATE_CHANGE = register(Invariant(
    id="eval-no-state-change",
    title="Eval mode changes no buffer and no parameter",
    family="eval mode",
    statement=r"\text{state\_dict after an eval forward} = \text{state\_dict before (bitwise)}",
    why=("Inference must be free of side effects: evaluating a validation set may not move "
         "the running statistics (or the batch count, or the affine parameters), or the model "
         "drifts just by being looked at."),
    source="torch.nn.Module.eval / torch.nn.BatchNorm2d documentation",
    applies=("eval mode", TRACKED, "drawn running statistics", "every rank, dtype, layout and option"),
    tolerance="none: bitwise (torch.equal on every state_dict entry, same keys, dtypes, shapes)",
    tolerance_formula=r"\tau = 0",
    check=check_no_state_change,
))

EVAL_PER_SAMPLE_INDEPENDENCE = register(Invariant(
    id="eval-per-sample-independence",
    title="Eval mode treats each sample independently of the rest of the batch",
    family="eval mode",
    statement=r"\mathrm{BN}_{eval}(x)[i] = \mathrm{BN}_{eval}(x[i{:}i{+}1])",
    why=("With fixed running statistics no value depends on another sample, so a model's "
         "prediction for one input cannot depend on what it is batched with. An "
         "implementation that falls back to batch statistics in eval mode breaks this."),
    source="Ioffe & Szegedy (2015), section 3.1 (inference is a deterministic function of one input)",
    applies=("eval mode", TRACKED, "drawn running statistics", "every rank, dtype, layout and option",
             "the first, the last and a drawn sample"),
    tolerance=("twice the eval-affine-map tolerance, not bitwise: both outputs approximate the "
               "same a x + c, but a kernel may take a different (vectorised, fused "
               "multiply-add or scalar-tail) path for a batch of one than for a batch of N; "
               "where a x + c (plus that bound) passes the dtype's largest value, both may be "
               "the same ±inf, its rounding"),
    tolerance_formula=r"|y^{alone}_i - y^{batch}_i| \le 2\,\tau^{eval}_i",
    params=drawn(Sample, sample=st.integers(0, 2**16)),
    check=check_per_sample,
))
