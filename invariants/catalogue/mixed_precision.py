"""Mixed precision: float16 or bfloat16 input through float32 parameters and buffers."""
from __future__ import annotations

import dataclasses

import torch

from bn_invariants.invariants.bounds import tex
from bn_invariants.invariants.assertions import InvariantViolation, Unsupported, assert_close, assert_true
from bn_invariants.invariants.assertions import is_device_fault
from bn_invariants.invariants.step import affine_views, momentum_factor, record_step
from bn_invariants.invariants.reference import closed_form, per_channel_sum
from bn_invariants.invariants.bounds import elementwise_tolerance
from bn_invariants.invariants.step import rounded_cotangent
from bn_invariants.invariants.bounds import half_tolerance, ulps_off
from bn_invariants.invariants.reference import exact_output
from bn_invariants.invariants.bounds import parameter_gradient_tolerances
from bn_invariants.invariants.bounds import batch_statistics, running_update
from bn_invariants.invariants.step import build, context
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.preconditions import Precondition
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.subjects import SubjectError
from bn_invariants.strategies import bn_options, finfo

MIXED_DTYPES = ("float16", "bfloat16")
PARAMETER_DTYPE = "float32"
"""The dtype of the weight, bias and running buffers under mixed precision."""


FLOAT32_STATE = Precondition(
    "affine or track_running_stats (without either, the module holds nothing to mix with "
    "and its half-precision accuracy is half-precision-ulp's concern)",
    lambda case: case.problem.options.affine or case.problem.options.track_running_stats,
    problems={"options": bn_options().filter(lambda o: o.affine or o.track_running_stats)})
"""Options that leave the module some float32 state: affine parameters, running buffers
or both."""


def mixed_step(subject, problem):
    """One training step of ``subject`` built with float32 parameters and buffers (the
    problem's affine parameters, exact in float32) on the problem's half-precision
    input.  A subject that raises in the forward pass declines (Unsupported); one that
    accepts the input and then fails its backward pass breaks the invariant.  A device
    fault (a CUDA error) is neither: it propagates."""
    wide = dataclasses.replace(problem, dtype=PARAMETER_DTYPE)
    how = f" with {PARAMETER_DTYPE} parameters"
    try:
        return record_step(build(subject, wide), subject, problem, how)
    except (InvariantViolation, SubjectError):
        raise
    except Exception as exc:
        if is_device_fault(exc):
            raise
        failure = exc
    try:
        build(subject, wide).train()(problem.input())
    except Exception as exc:
        if is_device_fault(exc):
            raise
        raise Unsupported(f"{subject}{how} raised {type(exc).__name__} on {problem.dtype} "
                          f"input: {exc}") from exc
    raise InvariantViolation(
        f"the backward pass raised {type(failure).__name__}: {failure}, but should succeed: "
        f"the forward pass accepted {problem.dtype} input{how} "
        f"[{context(subject, problem)}{how}]") from failure


def _assert_dtypes(record, p, ctx: str) -> None:
    """The output in the input's dtype; the parameters (hence their gradients) and the
    running buffers still float32 after the step."""
    expected = {"output": p.torch_dtype}
    expected.update({name: torch.float32 for name in ("weight", "bias", "running_mean",
                                                       "running_var") if name in record.dtypes})
    for name, want in expected.items():
        got = record.dtypes[name]
        assert_true(f"{name}.dtype", got == want, got, want, ctx)


def _assert_running(record, p, ctx: str) -> None:
    """The float32 buffers after one step from (0, 1): batch statistics of the exact
    input values accumulated in float32, folded in with the momentum factor."""
    if not p.options.track_running_stats:
        return
    if record.running_mean is None or record.running_var is None:
        raise InvariantViolation(f"running_mean, running_var=None, but should be float32 "
                                 f"tensors: track_running_stats=True [{ctx}]")
    mean, var = batch_statistics(p.values, PARAMETER_DTYPE, p.options.eps)
    c, f = p.num_features, momentum_factor(p)
    zeros, ones = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    when = f"{ctx}; one step from fresh buffers, momentum factor {f:g}"
    for name, got, start, stat in (("running_mean", record.running_mean, zeros, mean),
                                   ("running_var", record.running_var, ones, var)):
        exact, bound = running_update(start, [(f, stat)], PARAMETER_DTYPE)
        assert_close(name, got, exact, bound, when)
    if record.batches is not None:
        assert_true("num_batches_tracked", record.batches == 1, record.batches, 1, when)


def check(subject, case, reference):
    p = case.problem
    record = mixed_step(subject, p)
    ctx = f"{context(subject, p)}; {PARAMETER_DTYPE} parameters and buffers"
    _assert_dtypes(record, p, ctx)
    stats = statistics(p.values, p.options.eps)
    gamma, beta = affine_views(dataclasses.replace(p, dtype=PARAMETER_DTYPE))
    rounded = exact_output(stats, gamma, beta).to(p.torch_dtype).double()
    out_tol = half_tolerance(p.dtype, stats, rounded, gamma, beta)
    assert_close("BN(x)", record.output, rounded, out_tol,
                 f"{ctx}; worst error {ulps_off(record.output, rounded, p.dtype):.3g} ulps")
    g = rounded_cotangent(p)
    grad_ctx = f"{ctx}; l = sum(g * BN(x)), g as drawn (cotangent regime in the problem)"
    # dl/dx is in the input's dtype: where the exact gradient passes its range, ±inf is
    # that gradient rounded
    assert_close("dl/dx", record.input_grad, closed_form(stats, g, gamma),
                 elementwise_tolerance(p.dtype, stats, g, gamma), grad_ctx,
                 overflow=finfo(p.dtype).max)
    if p.options.affine and record.own_gradients:
        if record.weight_grad is None or record.bias_grad is None:
            raise InvariantViolation(f"dl/dgamma or dl/dbeta=None, but should be float32 "
                                     f"tensors: affine=True [{grad_ctx}]")
        beta_tol, gamma_tol = parameter_gradient_tolerances(p.dtype, stats, g, PARAMETER_DTYPE)
        assert_close("dl/dbeta", record.bias_grad, per_channel_sum(g), beta_tol, grad_ctx)
        assert_close("dl/dgamma", record.weight_grad, per_channel_sum(g * stats.xhat),
                     gamma_tol, grad_ctx)
    _assert_running(record, p, ctx)


MIXED_PRECISION = register(Invariant(
    id="mixed-precision",
    title="Half-precision input with float32 parameters",
    family="numerics",
    statement=(r"x \in \{\mathrm{fp16}, \mathrm{bf16}\},\ \gamma, \beta, \hat\mu, \hat\sigma^2 "
               r"\in \mathrm{fp32}:\ \mathrm{BN}(x) \in \mathrm{dtype}(x),\ "
               r"|\mathrm{BN}(x)_i - \mathrm{fl}(\gamma\hat x_i + \beta)| \le \tau_i"),
    why=("Mixed-precision training keeps the weights, their gradients and the running "
         "statistics in float32 while activations are float16 or bfloat16 (torch.autocast "
         "leaves batch norm in the input dtype, with float32 parameters). The batch norm must "
         "then return the input's dtype (not the promoted float32), keep float32 buffers and "
         "gradients, and accumulate its statistics in float32: that is the point of the "
         "float32 copies. An implementation that computes the statistics, or sums dγ and dβ, "
         "in the input's precision loses about log2(n) bits and, in float16, overflows "
         "sums of squares."),
    source=("Micikevicius et al. (2018), Mixed Precision Training, sections 3.1 and 3.3; "
            "PyTorch documentation: Automatic Mixed Precision (autocast op reference) and "
            "torch.nn.functional.batch_norm"),
    applies=("training mode, one step from fresh buffers", "float16 and bfloat16 input",
             "the subject built with dtype=float32", FLOAT32_STATE,
             "every rank, layout (channels-last included), regime, eps and momentum",
             "a subject that raises on mixed input declines"),
    tolerance=("dtypes exactly (the output in the input dtype; weight, bias, hence dγ and "
               "dβ, and the running buffers float32). Output: 2 ulps of the correctly rounded float64 "
               "value plus the error of float32 statistics, 4u₃₂[k(n)(1 + |μ|/s + |x̂|)|γ| + "
               "|β|] (as half-precision-ulp). dl/dx: the closed-form tolerance of "
               "input-gradient-closed-form in the input dtype. dβ: 4(u₃₂k(n) + u₃₂)Σ|g|, a "
               "float32 sum of the half-precision g. dγ: the parameter-gradients rule with "
               "u_out of the input dtype (x̂ may be recomputed in it). Running statistics: "
               "float32 batch statistics (4(u₃₂k(n) + u₃₂)(|μ| + σ) for the mean) folded in "
               "with a rounding of each float32 buffer term (as running-stats-update)"),
    tolerance_formula=(tex(r"\tau^{out}_i = @{ULPS}\,\mathrm{ulp}(y_i) + @{SAFETY}u_{32}\big[k(n)(1 + "
                       r"\tfrac{|\mu|}{s} + |\hat x_i|)|\gamma| + |\beta|\big],\ "
                       r"\tau^{\beta}_c = @{SAFETY}(u_{32}k(n) + u_{32})\textstyle\sum_{i\in c}|g_i|,\ "
                       r"\tau^{\gamma}_c = @{SAFETY}(u_{32}k(n) + u_{out})\sum_{i\in c}|g_i|"
                       r"(1 + \tfrac{|\mu_c|}{s_c} + |\hat x_i|)")),
    check=check,
    dtypes=MIXED_DTYPES,
))
