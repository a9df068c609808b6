"""Error bounds and measurements shared by the numerics, differential and layout families.

Registers nothing.  The bounds follow invariants.tolerances: statistics accumulated
in u_acc with relative error k(n) u_acc, the elementwise stage allowed to run in the
input dtype (u_out), SAFETY for the constant factors of first-order bounds.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bn_invariants.invariants.assertions import InvariantViolation
from bn_invariants.invariants.catalogue.input_gradient import per_channel_sum
from bn_invariants.invariants.harness import affine_of, build, context
from bn_invariants.invariants.reference import Statistics
from bn_invariants.invariants.tolerances import SAFETY, relative_error
from bn_invariants.strategies import apply_layout, finfo, mantissa_bits, unit_roundoff


def ulp(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """The spacing of ``dtype`` at each |value| (float64 in, float64 out): 2**(e - p)
    for |v| in [2**(e-1), 2**e), and the subnormal spacing below the smallest normal."""
    _, exponent = torch.frexp(values.double())
    lowest = torch.frexp(torch.tensor(finfo(dtype).tiny, dtype=torch.float64))[1]
    return torch.ldexp(torch.ones_like(values, dtype=torch.float64),
                       torch.maximum(exponent, lowest) - mantissa_bits(dtype))


def exact_output(stats: Statistics, gamma=None, beta=None) -> torch.Tensor:
    """gamma * xhat + beta in float64 (xhat alone without affine parameters)."""
    return stats.xhat if gamma is None else stats.xhat * gamma + beta


def input_gradient_tolerance(dtype: str, n: int, mean, std, xhat, g, weight=None):
    """Bound on |dl/dx_i - exact| elementwise, for dl/dx_i = (gamma/s)(g_i - mean(g) - xhat_i m),
    m = mean(g xhat).

    With e = u_acc k(n) + u_out (``relative_error``) and r = |mu|/s, first-order terms:
    1/s off by e(1 + r); mean(g) by e mean|g|; xhat_i by e(1 + r + |xhat_i|); m by
    e mean(|g|(1 + r + 2|xhat|)); forming and rounding the combination 2e(|g_i| +
    |mean g| + |xhat_i m|).  With |m| <= mean(|g||xhat|) their sum is at most
    e F_i G_i (|gamma|/s), F_i = 3 + r + |xhat_i|,
    G_i = |g_i| + 1.5 mean|g| + (1 + 2|xhat_i|) mean(|g|(1 + 2|xhat|)).
    """
    dims = (0,) + tuple(range(2, g.dim()))
    gamma = 1.0 if weight is None else weight.abs()
    spread = (g.abs() * (1 + 2 * xhat.abs())).mean(dims, keepdim=True)
    mass = g.abs() + 1.5 * g.abs().mean(dims, keepdim=True) + (1 + 2 * xhat.abs()) * spread
    factor = 3 + mean.abs() / std + xhat.abs()
    return SAFETY * relative_error(dtype, n) * factor * mass * gamma / std + finfo(dtype).tiny


def parameter_gradient_tolerances(dtype: str, stats, g, beta_dtype: str | None = None):
    """Bounds on dl/dβ = Σ g and dl/dγ = Σ g x̂ per channel, (C,) each, as in
    parameter-gradients: each sum's l1 mass times its relative error
    SAFETY (u_acc k(n) + u_out), x̂ᵢ carrying (1 + |μ|/s + |x̂ᵢ|) of it.
    ``beta_dtype`` (default ``dtype``) sets u_out and the subnormal rounding of dβ, a
    sum with no elementwise stage."""
    beta_dtype = beta_dtype or dtype
    conditioning = 1 + stats.mean.abs() / stats.std + stats.xhat.abs()
    beta_tol = (SAFETY * relative_error(beta_dtype, stats.n) * per_channel_sum(g.abs())
                + finfo(beta_dtype).tiny)
    gamma_tol = (SAFETY * relative_error(dtype, stats.n) * per_channel_sum(g.abs() * conditioning)
                 + finfo(dtype).tiny)
    return beta_tol, gamma_tol


def running_tolerances(compute: str, stored: str, stats: Statistics, factor: float,
                       running_mean0, running_var0):
    """Bounds on the running mean and variance after one training step, per channel (C,).

    The batch mean is off by e(|mu| + sigma) (mean|x| <= |mu| + sigma); the biased
    variance by e(|mu| + sigma)(sigma + e(|mu| + sigma)): rounding x - mu and the
    sum cost e sigma(|mu| + sigma), the mean's error adds its square.  e is
    ``relative_error(compute, n)``; ``factor`` (the momentum) scales both, n/(n-1)
    the variance; updating a buffer stored in ``stored`` rounds each product once.
    """
    e = relative_error(compute, stats.n)
    u = unit_roundoff(stored)
    mu, sigma = stats.mean.abs().flatten(), stats.var.sqrt().flatten()
    bessel = stats.n / max(stats.n - 1, 1)
    mean_error = e * (mu + sigma)
    var_error = mean_error * (sigma + mean_error) * bessel
    unbiased = stats.var.flatten() * bessel
    tiny = finfo(stored).tiny
    tol_mean = SAFETY * (factor * mean_error
                         + u * ((1 - factor) * running_mean0.abs() + factor * mu)) + tiny
    tol_var = SAFETY * (factor * var_error
                        + u * ((1 - factor) * running_var0.abs() + factor * unbiased)) + tiny
    return tol_mean, tol_var


def computes_in_float64(subject) -> bool:
    """Whether ``subject`` is a float64 oracle (a model batch norm computing in float64
    and rounding once to the input dtype)."""
    return getattr(subject.factory, "compute_dtype", None) == "float64"


@dataclass(frozen=True)
class Step:
    """What one training step of a subject produced, as float64 on the CPU."""

    output: torch.Tensor
    input_grad: torch.Tensor
    running_mean: torch.Tensor | None
    running_var: torch.Tensor | None
    gamma: torch.Tensor | None
    beta: torch.Tensor | None
    momentum_factor: float


def _buffer(module, name):
    value = getattr(module, name, None)
    return None if value is None else value.detach().to("cpu", torch.float64).clone()


def training_step(subject, problem, cotangent: torch.Tensor) -> Step:
    """Forward ``problem.input()`` (in its layout) through a fresh module of
    ``subject`` in training mode, then backward ``cotangent``; read y, dl/dx and
    the running statistics.  The gradient is taken at a contiguous leaf behind
    the layout copy, so every layout reports it in the same logical order."""
    module = build(subject, problem)
    leaf = problem.values.to(problem.torch_dtype).to(problem.device).requires_grad_(True)
    y = module(apply_layout(leaf, problem.layout))
    if not y.requires_grad:
        raise InvariantViolation(f"BN(x).requires_grad=False, but should be True: the output "
                                 f"depends on x [{context(subject, problem)}]")
    y.backward(cotangent.to(problem.torch_dtype).to(problem.device))
    if leaf.grad is None:
        raise InvariantViolation(f"dl/dx=None, but should be a tensor: the backward pass must "
                                 f"reach the input [{context(subject, problem)}]")
    opts = problem.options
    steps = getattr(module, "num_batches_tracked", None)
    factor = opts.momentum
    if factor is None:
        factor = 1.0 / max(int(steps), 1) if steps is not None else 1.0
    gamma, beta = affine_of(module, len(problem.shape))
    return Step(y.detach().to("cpu", torch.float64), leaf.grad.to("cpu", torch.float64),
                _buffer(module, "running_mean"), _buffer(module, "running_var"),
                gamma, beta, factor)


HALF_BACKWARD_OVERFLOW = (
    "torch's CPU float16 backward, for channels-last or strided input (a contiguous copy of "
    "the same values takes another kernel and passes), holds a per-channel intermediate in "
    "float16: the sum of g (x - mean), or that sum times 1/(var + eps). Once it passes 65504 "
    "(the float16 maximum) it overflows and dl/dx is NaN for the whole channel, though the "
    "exact gradient, the input and the output are all in float16's range; float32 "
    "accumulation, the standard for half types, would not overflow. Reached by heavy tails "
    "over a long reduction (the sum itself) and by tiny variance with a small eps (1/var "
    "near 1e6).")

HALF_BACKWARD_REGION = "strided or channels-last storage"


def non_contiguous_half(problem) -> bool:
    """The region of the float16 backward overflow: the non-contiguous kernels' inputs."""
    return problem.layout in ("strided", "channels_last")


def _long_reduction_cases(make_case):
    """(factories, make_case(shape, family)) for torch's three rank families, each on the
    strategy's long-reduction shape with one channel (family 0, 1, 2: ranks 2, 4, 5)."""
    from torch import nn

    from bn_invariants.invariants.subjects import FunctionalBatchNorm

    return (((nn.BatchNorm1d, FunctionalBatchNorm), make_case((100000, 1), 0)),
            ((nn.BatchNorm2d,), make_case((2, 1, 224, 224), 1)),
            ((nn.BatchNorm3d,), make_case((2, 1, 37, 37, 37), 2)))


def half_backward_overflow_cases():
    """(factories, counterexample) for the float16 backward overflow, one per rank family:
    the strategy's long-reduction shapes, one channel, strided, heavy tails."""
    from bn_invariants.invariants.registry import Case
    from bn_invariants.strategies import Problem

    return _long_reduction_cases(lambda shape, _: Case(Problem(
        shape=shape, dtype="float16", layout="strided", regime="heavy_tails", severity=1.0,
        seed=1)))


def half_backward_tiny_variance_cases(params=None):
    """(factories, counterexample) for the float16 backward overflow through 1/(var + eps):
    the strategy's long-reduction shapes, one channel, strided, tiny variance (std 1e-3),
    eps = 1e-7; ``params`` are the invariant's own."""
    from bn_invariants.invariants.registry import Case
    from bn_invariants.strategies import BNOptions, Problem

    seeds = (1, 1, 2)  # the first seed that fails for each family
    return _long_reduction_cases(lambda shape, family: Case(Problem(
        shape=shape, dtype="float16", layout="strided", regime="tiny_variance",
        seed=seeds[family], options=BNOptions(eps=1e-7)), params or {}))


def record_half_backward_overflow(invariant_id: str, cases, measured: str) -> None:
    """Record the float16 backward overflow as a known deviation of ``invariant_id``, on
    the CPU, in float16 strided or channels-last storage, for each (factories,
    counterexample) of ``cases``."""
    from bn_invariants.invariants.deviations import KnownDeviation, record

    for factories, case in cases:
        record(KnownDeviation(
            invariant=invariant_id, factories=factories, device="cpu", dtypes=("float16",),
            counterexample=case, measured=measured, explanation=HALF_BACKWARD_OVERFLOW,
            region=non_contiguous_half, region_text=HALF_BACKWARD_REGION))
