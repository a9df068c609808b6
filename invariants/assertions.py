"""Assertion helpers: vectorised check first, the worst element located only on failure.

Every message reads ``what=got, but should be expected [context]``.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


class InvariantViolation(AssertionError):
    """A subject broke an invariant; the message says where and by how much."""


class Unsupported(Exception):
    """The subject explicitly declines an operation the invariant needs."""


CLEAR_ERRORS = (ValueError, RuntimeError)
"""What a batch norm may raise for an input it cannot normalise (never a device fault:
``is_device_fault``)."""


def is_device_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault of the accelerator rather than an answer of the subject:
    a ``torch.AcceleratorError`` or a RuntimeError reading "CUDA error: ...".  A CUDA fault
    (a misaligned address, an illegal access) is sticky: every later CUDA call in the
    process raises it again.  So no check may take it for a clear refusal or a declined
    case; it must fail the test it happens in."""
    accelerator_error = getattr(torch, "AcceleratorError", ())
    return isinstance(exc, accelerator_error) or (
        isinstance(exc, RuntimeError) and str(exc).startswith("CUDA error"))


_RATIO_RECORDS: list = []


@contextmanager
def recording_ratios():
    """Within the block, every ``assert_close`` notes its worst error-to-tolerance ratio;
    yields a list whose one element is the largest ratio seen so far (0.0 at first)."""
    record = [0.0]
    _RATIO_RECORDS.append(record)
    try:
        yield record
    finally:
        _RATIO_RECORDS.remove(record)


def _note_ratio(ratio: float) -> None:
    for record in _RATIO_RECORDS:
        record[0] = max(record[0], ratio)


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
    got64 = got.detach().to("cpu", torch.float64)
    exp64 = expected.detach().to("cpu", torch.float64)
    if got64.shape != exp64.shape:
        raise InvariantViolation(
            f"{what} has shape {tuple(got64.shape)}, but should have shape "
            f"{tuple(exp64.shape)} [{context}]")
    tol = torch.as_tensor(tolerance, dtype=torch.float64).expand_as(exp64)
    same_special = (got64 == exp64) | (got64.isnan() & exp64.isnan())
    if overflow is not None:
        same_special |= got64.isinf() & (exp64.abs() + tol > overflow)
    error = (got64 - exp64).abs()
    ok = same_special | (error <= tol)
    if _RATIO_RECORDS:
        ratios = torch.where(same_special, torch.zeros_like(error), error / tol)
        _note_ratio(float(ratios.nan_to_num(float("inf")).max()) if ratios.numel() else 0.0)
    if bool(ok.all()):
        return
    badness = torch.where(ok, torch.zeros_like(error), (error / tol).nan_to_num(float("inf")))
    worst = int(badness.flatten().argmax())
    at = _index(worst, exp64.shape)
    g, e, t = got64.flatten()[worst].item(), exp64.flatten()[worst].item(), tol.flatten()[worst].item()
    count = int((~ok).sum())
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
