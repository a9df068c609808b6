"""Assertion helpers: vectorised check first, the worst element located only on failure.

Every message reads ``what=got, but should be expected [context]``.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager

import torch
from hypothesis import currently_in_test_context, note, reject
from hypothesis.errors import UnsatisfiedAssumption


class InvariantViolation(AssertionError):
    """A subject broke an invariant; the message says where and by how much."""


class SuiteError(Exception):
    """The suite itself is wrong (a NaN tolerance, say): never reported as the subject's
    violation."""


class Unsupported(Exception):
    """The subject explicitly declines an operation the invariant needs."""


CLEAR_ERRORS = (ValueError, RuntimeError, ArithmeticError)
"""What a batch norm may raise for an input it cannot normalise: torch's ValueError and
RuntimeError, and Python's arithmetic errors (OverflowError for statistics that overflow,
ZeroDivisionError, FloatingPointError); never a device fault (``is_device_fault``)."""


def is_device_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault of the accelerator rather than an answer of the subject:
    a ``torch.AcceleratorError`` or a RuntimeError reading "CUDA error: ...".  A CUDA fault
    (a misaligned address, an illegal access) is sticky: every later CUDA call in the
    process raises it again.  So no check may take it for a clear refusal or a declined
    case; it must fail the test it happens in."""
    accelerator_error = getattr(torch, "AcceleratorError", ())
    return isinstance(exc, accelerator_error) or (
        isinstance(exc, RuntimeError) and str(exc).startswith("CUDA error"))


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


_RATIO_RECORDS: list = []


@contextmanager
def recording_ratios():
    """Within the block, every ``assert_close`` notes its worst error-to-tolerance ratio;
    yields a list whose one element is the largest ratio seen so far (0.0 at first)."""
    record = [0.0]
    _RATIO_RECORDS.append(record)
    try:
        yield record
    finally:  # by identity: two records holding the same ratio compare equal
        del _RATIO_RECORDS[next(i for i, r in enumerate(_RATIO_RECORDS) if r is record)]


def _note_ratio(ratio: float) -> None:
    for record in _RATIO_RECORDS:
        record[0] = max(record[0], ratio)


def _index(flat_index: int, shape) -> tuple:
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_index), tuple(shape)))


def assert_close(what: str, got: torch.Tensor, expected: torch.Tensor, tolerance,
                 context: str = "", *, overflow: float | None = None,
                 nan_ok: str | None = None, oracle: tuple | None = None) -> None:
    """|got - expected| <= tolerance elementwise, compared in float64 on the CPU.

    ``tolerance`` is a scalar or a tensor broadcastable to ``expected``; a NaN in it is a
    bug in the suite (SuiteError), never a verdict on the subject.  A non-finite value in
    ``got`` fails, even where ``expected`` holds the same one: two NaNs (or infinities)
    never count as agreeing, unless ``nan_ok`` says why they should (the invariant's own
    reason), or, given ``overflow`` (the largest finite value of the dtype ``got`` was
    computed in), +inf where expected + tolerance passes it (-inf where expected - tolerance
    passes -overflow): the bound then admits a result the dtype cannot hold, and ±inf is
    that result rounded; an infinity of the other sign rounds nothing the bound admits (an
    infinite tolerance admits ±inf likewise; never NaN).  ``oracle`` = (exact, bound, largest),
    where both sides are the subject's own: the same ±inf on both sides, of the exact
    value's sign where |exact| + bound passes ``largest``, agree (each is that value
    rounded); elsewhere two infinities still never do.
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
    if bool(tol.isnan().any()):
        raise SuiteError(f"the tolerance of {what} is NaN in {int(tol.isnan().sum())} of "
                         f"{tol.numel()} elements: a bug in the suite's bound, not in the "
                         f"subject [{context}]")
    agree = torch.zeros_like(got64, dtype=torch.bool)
    if nan_ok is not None:
        agree |= (got64 == exp64) | (got64.isnan() & exp64.isnan())
    tol = torch.where(tol > 0, torch.maximum(tol, half_ulp(got)), tol)
    if overflow is not None:  # ±inf rounds a value past ±overflow within the bound's reach
        agree |= ((got64 == math.inf) & (exp64 + tol > overflow)
                  | (got64 == -math.inf) & (exp64 - tol < -overflow))
    agree |= tol.isinf() & got64.isinf()  # an infinite bound admits a rounded overflow
    if oracle is not None:
        agree |= same_overflow(got64, exp64, *oracle)
    error = (got64 - exp64).abs()
    ok = agree | (torch.isfinite(got64) & (error <= tol))
    if _RATIO_RECORDS:  # a margin: what a passing error uses of the derived bound, not
        # of the half-ulp floor a correctly rounded result may always reach
        floor = ok & (error <= half_ulp(got))
        ratios = torch.where(agree | floor | (error == 0), torch.zeros_like(error), error / tol)
        _note_ratio(float(ratios.nan_to_num(float("inf")).max()) if ratios.numel() else 0.0)
    if bool(ok.all()):
        return
    badness = torch.where(ok, torch.zeros_like(error), (error / tol).nan_to_num(float("inf")))
    worst = int(badness.flatten().argmax())
    at = _index(worst, exp64.shape)
    g, e, t = got64.flatten()[worst].item(), exp64.flatten()[worst].item(), tol.flatten()[worst].item()
    count = int((~ok).sum())
    where = f"{what}[{', '.join(map(str, at))}]={g!r}"
    if math.isnan(e) and math.isfinite(g):
        raise _compared(InvariantViolation(
            f"{where}, but the expected side (the reference) is NaN there: the reference, "
            f"not the subject, gave no value ({count} of {ok.numel()} elements) [{context}]"),
            what, got64, exp64, tol)
    if not math.isfinite(g) and not math.isfinite(e):
        raise _compared(InvariantViolation(
            f"{where}, but should be finite: the side it is compared with is {e!r} too, and "
            f"two non-finite values never agree ({count} of {ok.numel()} elements out) "
            f"[{context}]"), what, got64, exp64, tol)
    raise _compared(InvariantViolation(
        f"{where}, but should be {e!r} ± {t:.3g} "
        f"(error {abs(g - e):.3g}, {abs(g - e) / t if t > 0 else float('inf'):.3g}× the "
        f"tolerance; {count} of {ok.numel()} elements out) [{context}]"),
        what, got64, exp64, tol)


def _compared(violation: InvariantViolation, what, got, expected, tolerance):
    """``violation`` carrying what was compared (``violation.compared``: the quantity's
    name, then got, expected and tolerance as float64 CPU tensors), so that another
    subject's values can be held against the same bound (inheritance.py)."""
    violation.compared = (what, got, expected, tolerance)
    return violation


def same_overflow(got, expected, exact, bound, overflow: float) -> torch.Tensor:
    """Where ``got`` and ``expected`` are the same ±inf, of the sign of ``exact``, and
    |exact| + bound passes ``overflow``: both are the exact value rounded (bool, float64
    comparison on the CPU)."""
    got = got.detach().to("cpu", torch.float64)
    expected = expected.detach().to("cpu", torch.float64)
    exact = torch.as_tensor(exact, dtype=torch.float64).expand_as(got)
    bound = torch.as_tensor(bound, dtype=torch.float64).expand_as(got)
    return (got.isinf() & (got == expected) & (got.sign() == exact.sign())
            & (exact.abs() + bound > overflow))


def channels_reaching(expected: torch.Tensor, tolerance, overflow: float, dim: int = 1) -> torch.Tensor:
    """The channels (indices along ``dim``) where some |expected| + tolerance passes
    ``overflow``, as a (C,) bool tensor: there ±inf may be the exact value rounded."""
    tol = torch.as_tensor(tolerance, dtype=torch.float64).expand_as(expected)
    reach = (expected.abs() + tol > overflow).movedim(dim, 0)
    return reach.reshape(reach.shape[0], -1).any(1)


def channels_past_the_range(what: str, got: torch.Tensor, expected: torch.Tensor, tolerance,
                            overflow: float, context: str = "", *, dim: int = 1) -> torch.Tensor:
    """The channels (indices along ``dim``) where some |expected| + tolerance passes
    ``overflow``, the largest finite value of ``got``'s dtype, as a (C,) bool tensor.  There
    ±inf may be the exact value rounded, and a sum or product over the channel that meets
    it (inf - inf, W·inf) reads nothing of an identity, so those channels are checked here
    entry by entry instead: each within its tolerance of ``expected``, or ±inf where the
    bound passes the range (``assert_close(..., overflow=...)``)."""
    __tracebackhide__ = True
    tol = torch.as_tensor(tolerance, dtype=torch.float64).expand_as(expected)
    past = channels_reaching(expected, tol, overflow, dim)
    for c in past.nonzero().flatten().tolist():
        assert_close(f"{what} (channel {c})", got.select(dim, c), expected.select(dim, c),
                     tol.select(dim, c), f"{context}; a channel whose exact value may pass the "
                     f"range {overflow:g}", overflow=overflow)
    return past


def assert_finite_where(what: str, got: torch.Tensor, oracle: torch.Tensor,
                        context: str = "") -> None:
    """``got`` is finite wherever the float64 oracle's ``oracle`` is: a non-finite answer
    to a question with a finite exact answer is a violation in every invariant."""
    __tracebackhide__ = True
    bad = ~torch.isfinite(got.detach().to("cpu", torch.float64)) & torch.isfinite(oracle)
    if bool(bad.any()):
        first = int(bad.flatten().nonzero()[0])
        value = got.detach().flatten()[first].item()
        exact = oracle.flatten()[first].item()
        raise InvariantViolation(
            f"{what}[{', '.join(map(str, _index(first, got.shape)))}]={value!r}, but should be "
            f"finite: the float64 oracle gives {exact!r} ({int(bad.sum())} of {got.numel()} "
            f"elements) [{context}]")


def finite_baseline(what: str, expected: torch.Tensor, context: str = "") -> None:
    """Reject the example when ``expected``, a side the suite constructed (a transformed
    eps, say) rather than the subject's answer to the drawn input, is not finite: such an
    example cannot judge the subject, and it is the suite's to avoid, not a violation."""
    if bool(torch.isfinite(expected.detach()).all()):
        return
    reason = f"rejected: the constructed side {what} is not finite [{context}]"
    if not currently_in_test_context():
        raise UnsatisfiedAssumption(reason)
    note(reason)
    reject()


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


def assert_identical(what, got, expected, ctx, other: str | None = None):
    """``got`` equals ``expected`` element for element (NaN where NaN): tolerance 0.

    With ``other`` (what ``expected`` is, when both sides are the subject's own outputs),
    the message names both sides and blames neither: either may be the wrong one."""
    __tracebackhide__ = True
    if other is None:
        assert_close(what, got, expected, 0.0, ctx)
        return
    try:
        assert_close(what, got, expected, 0.0, ctx)
    except InvariantViolation as exc:
        match = re.match(r"^(?P<at>[^=]+)=(?P<got>\S+), but should be (?P<exp>\S+) ± [^(]*"
                         r"\(error (?P<err>[^,]+),[^;]*; (?P<count>.*?) out\)", str(exc))
        if match is None:
            raise
        index = match["at"][len(what):]
        raise InvariantViolation(
            f"{match['at']}={match['got']} and {other}{index}={match['exp']} differ by "
            f"{match['err']}, but should be identical ({match['count']} differ) "
            f"[{ctx}]") from None
