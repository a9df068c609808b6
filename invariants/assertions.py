"""Assertion helpers: vectorised check first, the worst element located only on failure.

Every message reads ``what=got, but should be expected [context]``.
"""
from __future__ import annotations

import math

import torch


class InvariantViolation(AssertionError):
    """A subject broke an invariant; the message says where and by how much."""


class Unsupported(Exception):
    """The subject explicitly declines an operation the invariant needs."""


CLEAR_ERRORS = (ValueError, RuntimeError, ArithmeticError)
"""What a batch norm may raise for an input it cannot normalise: torch's ValueError and
RuntimeError, and Python's arithmetic errors (OverflowError for statistics that overflow,
ZeroDivisionError, FloatingPointError)."""


def half_ulp(got: torch.Tensor) -> torch.Tensor:
    """Half a unit in the last place of each value of ``got`` in its own dtype, as float64:
    the rounding any computed value carries, below which no tolerance may go (0 for
    integers and non-finite values)."""
    values = got.detach().to("cpu")
    if not values.is_floating_point():
        return torch.zeros(values.shape, dtype=torch.float64)
    info = torch.finfo(values.dtype)
    v = values.double().abs()
    exponent = torch.frexp(v.clamp(min=info.tiny)).exponent.double()
    half = 2.0 ** (exponent - 1) * info.eps / 2  # eps = 2**(1 - p); ulp = 2**(e - p)
    return torch.where(torch.isfinite(v), half, torch.zeros_like(half))


def _index(flat_index: int, shape) -> tuple:
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_index), tuple(shape)))


def assert_close(what: str, got: torch.Tensor, expected: torch.Tensor, tolerance,
                 context: str = "", *, overflow: float | None = None) -> None:
    """|got - expected| <= tolerance elementwise, compared in float64 on the CPU.

    ``tolerance`` is a scalar or a tensor broadcastable to ``expected``.  NaN or
    infinity in ``got`` fails unless ``expected`` holds the same value there, or,
    given ``overflow`` (the largest finite value of the dtype ``got`` was computed
    in), where |expected| + tolerance passes it: the bound then admits a result the
    dtype cannot hold, and ±inf is that result rounded.
    """
    __tracebackhide__ = True
    if not isinstance(got, torch.Tensor):
        raise InvariantViolation(f"{what}={got!r}, but should be a tensor [{context}]")
    got64 = got.detach().to("cpu", torch.float64)
    exp64 = expected.detach().to("cpu", torch.float64)
    if got64.shape != exp64.shape:
        raise InvariantViolation(
            f"{what} has shape {tuple(got64.shape)}, but should have shape "
            f"{tuple(exp64.shape)} [{context}]")
    tol = torch.as_tensor(tolerance, dtype=torch.float64).expand_as(exp64)
    tol = torch.where(tol > 0, torch.maximum(tol, half_ulp(got)), tol)
    same_special = (got64 == exp64) | (got64.isnan() & exp64.isnan())
    if overflow is not None:
        same_special |= got64.isinf() & (exp64.abs() + tol > overflow)
    error = (got64 - exp64).abs()
    ok = same_special | (error <= tol)
    if bool(ok.all()):
        return
    badness = torch.where(ok, torch.zeros_like(error), (error / tol).nan_to_num(float("inf")))
    worst = int(badness.flatten().argmax())
    at = _index(worst, exp64.shape)
    g, e, t = got64.flatten()[worst].item(), exp64.flatten()[worst].item(), tol.flatten()[worst].item()
    count = int((~ok).sum())
    if math.isnan(e):
        raise InvariantViolation(
            f"{what}[{', '.join(map(str, at))}]={g!r}, but the expected side (the reference) "
            f"is NaN there: the reference, not the subject, gave no value ({count} of "
            f"{ok.numel()} elements) [{context}]")
    raise InvariantViolation(
        f"{what}[{', '.join(map(str, at))}]={g!r}, but should be {e!r} ± {t:.3g} "
        f"(error {abs(g - e):.3g}, {abs(g - e) / t if t > 0 else float('inf'):.3g}× the "
        f"tolerance; {count} of {ok.numel()} elements out) [{context}]")


def assert_finite(what: str, got: torch.Tensor, context: str = "") -> None:
    """Every element of ``got`` is finite."""
    __tracebackhide__ = True
    bad = ~torch.isfinite(got.detach())
    if bool(bad.any()):
        at = _index(int(bad.flatten().nonzero()[0]), got.shape)
        value = got.detach().flatten()[int(bad.flatten().nonzero()[0])].item()
        raise InvariantViolation(
            f"{what}[{', '.join(map(str, at))}]={value!r}, but should be finite "
            f"({int(bad.sum())} of {got.numel()} elements are not) [{context}]")


def assert_true(what: str, condition: bool, got, expected, context: str = "") -> None:
    """A scalar fact: fails with ``what=got, but should be expected``."""
    __tracebackhide__ = True
    if not condition:
        raise InvariantViolation(f"{what}={got}, but should be {expected} [{context}]")


def assert_identical(what, got, expected, ctx):
    """``got`` equals ``expected`` element for element (NaN where NaN): tolerance 0."""
    __tracebackhide__ = True
    assert_close(what, got, expected, 0.0, ctx)
