"""Running statistics: reading, setting and drawing them, and the error bounds of
updating them (training) and of applying them (eval).  No invariants here: the
running-statistics and eval-mode modules share these pieces."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bn_invariants.invariants.assertions import InvariantViolation
from bn_invariants.invariants.harness import affine_of, context
from bn_invariants.invariants.reference import channel_view, statistics
from bn_invariants.invariants.tolerances import SAFETY, relative_error
from bn_invariants.strategies import accumulation_dtype, finfo, unit_roundoff


def as64(t: torch.Tensor) -> torch.Tensor:
    """A float64 CPU copy of ``t`` (never an alias: buffers change in place)."""
    return t.detach().to("cpu", torch.float64).clone()


def dtype_name(t: torch.Tensor) -> str:
    """'float16' for a torch.float16 tensor."""
    return str(t.dtype).removeprefix("torch.")


def running_buffers(module, subject, problem):
    """(running_mean, running_var, num_batches_tracked or None) of ``module``; a
    module without running statistics although track_running_stats=True asked
    for them breaks every invariant that reads them."""
    mean = getattr(module, "running_mean", None)
    var = getattr(module, "running_var", None)
    for name, buf in (("running_mean", mean), ("running_var", var)):
        if not isinstance(buf, torch.Tensor):
            raise InvariantViolation(
                f"{name}={buf!r}, but should be a ({problem.num_features},) tensor: "
                f"track_running_stats=True asks for running statistics "
                f"[{context(subject, problem)}]")
        if tuple(buf.shape) != (problem.num_features,):
            raise InvariantViolation(
                f"{name}.shape={tuple(buf.shape)}, but should be ({problem.num_features},) "
                f"[{context(subject, problem)}]")
    return mean, var, getattr(module, "num_batches_tracked", None)


def drawn_running_stats(problem, stream: int):
    """(mean, var) per channel (float64, (C,)), away from the defaults (0, 1) and from
    the batch's own statistics, on the batch's scale: mean = mu + s z with z standard
    normal, var = s^2 2^(2v - 1) with v uniform, s = sqrt(Var[x] + eps); both kept
    below a sixteenth of the dtype's largest value, so they are stored finite."""
    stats = statistics(problem.values, problem.options.eps)
    gen = problem.generator(stream)
    c = problem.num_features
    z = torch.randn(c, generator=gen, dtype=torch.float64)
    spread = 2.0 ** (2 * torch.rand(c, generator=gen, dtype=torch.float64) - 1)
    s = stats.std.flatten()
    top = finfo(problem.dtype).max / 16
    return (stats.mean.flatten() + s * z).clamp(-top, top), (s * s * spread).clamp(max=top)


@torch.no_grad()
def set_running_stats(module, subject, problem, mean, var, batches=None):
    """Copy ``mean`` and ``var`` (float64) into the module's buffers (rounding them to
    the buffers' dtype) and ``batches`` into num_batches_tracked when given; return
    the stored (mean, var) as float64."""
    rm, rv, nbt = running_buffers(module, subject, problem)
    rm.copy_(mean)
    rv.copy_(var)
    if batches is not None and nbt is not None:
        nbt.fill_(batches)
    return as64(rm), as64(rv)


@dataclass(frozen=True)
class BatchStatistic:
    """One statistic of one batch as folded into a running buffer: its exact value
    and a bound on its computed error, per channel (float64, (C,))."""

    value: torch.Tensor
    error: torch.Tensor


def batch_statistics(values: torch.Tensor, dtype: str, eps: float):
    """(mean, unbiased variance) of a batch as BatchStatistics.

    The mean, accumulated over n values, is off by at most SAFETY (u_acc k(n) + u_out)
    (|mu| + sigma) (sum of |x|, n |mu| + n sigma at most).  The biased variance is
    off by SAFETY rel (sigma^2 + sigma |mu|) (n u kappa for an updating algorithm,
    kappa <= 1 + |mu|/sigma) plus the square of the mean's error (two-pass); the
    factor n / (n - 1) scales both.
    """
    stats = statistics(values, eps)
    n = stats.n
    mu, var = stats.mean.flatten(), stats.var.flatten()
    sigma = var.sqrt()
    rel = relative_error(dtype, n)
    mean_error = SAFETY * rel * (mu.abs() + sigma)
    var_error = SAFETY * rel * (var + sigma * mu.abs()) + mean_error ** 2
    bessel = n / (n - 1)
    return BatchStatistic(mu, mean_error), BatchStatistic(var * bessel, var_error * bessel)


def running_update(start: torch.Tensor, steps, buffer_dtype: str):
    """(exact, bound) of a running buffer after r <- (1 - f) r + f s for each
    (f, BatchStatistic s) in ``steps``, from ``start`` (float64, as stored).

    Each step carries the statistic's error, scaled by f, a few roundings of the
    update in the buffer's dtype, SAFETY u_buf (|r| + f |s|) (which covers both
    (1 - f) r + f s and the lerp form r + f (s - r)), and the absolute rounding of a
    subnormal result; earlier errors shrink by (1 - f).  Where the statistic or the
    result may pass the dtype's largest finite value, an infinity is a correct
    rounding: the bound there is infinite (and stays so).
    """
    u_buf, info = unit_roundoff(buffer_dtype), finfo(buffer_dtype)
    exact, bound = start.clone(), torch.zeros_like(start)
    for f, stat in steps:
        rounding = SAFETY * u_buf * (exact.abs() + f * stat.value.abs()) + info.tiny
        bound = (1 - f) * bound + f * stat.error + rounding
        exact = (1 - f) * exact + f * stat.value
        reach = torch.maximum(stat.value.abs() + stat.error, exact.abs() + bound)
        bound = torch.where(reach * (1 + u_buf) >= info.max, float("inf"), bound)
    return exact, bound


MAP_ROUNDINGS = 6
"""Roundings of the eval-mode elementwise stage in the input dtype: x - rm, 1/sqrt(rv + eps)
or a rounded to the input dtype, the products by it and by gamma, the sum with beta (five),
plus one for second-order terms and the float64 reference's own error."""


@dataclass(frozen=True)
class EvalMap:
    """The per-channel affine map an eval-mode batch norm applies, y = a x + c,
    with the pieces its error bound needs; float64 channel views (1, C, 1, ...)."""

    a: torch.Tensor
    c: torch.Tensor
    mean: torch.Tensor
    beta: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The exact output a x + c, in float64."""
        return self.a * x + self.c

    def tolerance(self, dtype: str, x: torch.Tensor) -> torch.Tensor:
        """Bound on |y - (a x + c)| elementwise: SAFETY u_acc |a| (|x| + |rm|)
        + MAP_ROUNDINGS u_out (|a| (|x| + |rm|) + |beta|) + tiny (1 + |a|).

        1/sqrt(rv + eps) is a per-channel statistic, formed in the accumulation dtype
        (a few roundings, u_acc); the elementwise stage, (x - rm) a + beta or
        a x + (beta - a rm), may run in the input dtype, each of its roundings at most
        u_out times |a| (|x| + |rm|) + |beta|.  tiny (1 + |a|) is the absolute rounding
        of a subnormal intermediate, scaled by a if it happens before it.
        """
        u_out, u_acc = unit_roundoff(dtype), unit_roundoff(accumulation_dtype(dtype))
        spread = self.a.abs() * (x.abs() + self.mean.abs())
        return (SAFETY * u_acc * spread + MAP_ROUNDINGS * u_out * (spread + self.beta.abs())
                + finfo(dtype).tiny * (1 + self.a.abs()))


def eval_map(module, rank: int, eps: float) -> EvalMap:
    """The EvalMap of ``module`` from its stored running statistics and affine
    parameters: a = gamma / sqrt(rv + eps), c = beta - a rm (gamma = 1, beta = 0
    without affine parameters)."""
    rm = channel_view(as64(module.running_mean), rank)
    rv = channel_view(as64(module.running_var), rank)
    gamma, beta = affine_of(module, rank)
    gamma = torch.ones_like(rm) if gamma is None else gamma
    beta = torch.zeros_like(rm) if beta is None else beta
    a = gamma / (rv + eps).sqrt()
    return EvalMap(a, beta - a * rm, rm, beta)
