"""What a subject offers beyond ranks and dtypes: constructor options, eval mode, and
whether it keeps the construction contract (the dtype asked for is the dtype built).

An option is *declined* when asking for it raises NotImplementedError, TypeError or
ValueError, at construction or at the first forward: it is reported in the coverage
with the exception's message, and no case needing it is drawn.  An option silently
dropped (float64 asked for, float32 parameters built) is not declined: it breaks the
construction contract, reported once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

from bn_invariants.invariants.subjects import Subject, SubjectError
from bn_invariants.strategies import DTYPE_NAMES, BNOptions, torch_dtype

DECLINES = (NotImplementedError, TypeError, ValueError)
"""Exceptions by which a subject declines an option it does not offer."""

OPTION_VARIANTS = {
    "momentum=None": BNOptions(momentum=None),
    "affine=False": BNOptions(affine=False),
    "track_running_stats=False": BNOptions(track_running_stats=False),
}
"""Each constructor option torch offers beyond its defaults, as probed."""

PROBE_CHANNELS = 3


@dataclass(frozen=True)
class Capabilities:
    """The options a subject declines (with why) and the contract breaks found."""

    declined: Mapping[str, str] = field(default_factory=dict)
    """option ("momentum=None", "eval mode", ...) -> the exception that declined it."""
    dropped: tuple = ()
    """Construction-contract breaks: 'dtype=float64 asked for, weight is torch.float32'."""

    def accepts(self, options: BNOptions) -> bool:
        """Whether a case with these constructor options can be drawn."""
        return not any(name in self.declined for name in needed(options))

    def declined_by(self, options: BNOptions) -> list:
        """The declined options ``options`` needs, as 'option (message)'."""
        return [f"{name} ({self.declined[name]})" for name in needed(options)
                if name in self.declined]

    def describe(self) -> str:
        """'declines momentum=None (NotImplementedError: ...)' or ''."""
        if not self.declined:
            return ""
        return "declines " + "; ".join(f"{k} ({v})" for k, v in self.declined.items())


def declined_option(exc: BaseException) -> str:
    """The message of a constructor that declined an option ('' for anything else): a
    SubjectError caused by NotImplementedError, TypeError or ValueError."""
    cause = exc.__cause__ if isinstance(exc, SubjectError) else None
    return f"{type(cause).__name__}: {cause}" if isinstance(cause, DECLINES) else ""


def needed(options: BNOptions) -> list:
    """The names of the non-default options ``options`` asks for."""
    out = []
    if options.momentum is None:
        out.append("momentum=None")
    if not options.affine:
        out.append("affine=False")
    if not options.track_running_stats:
        out.append("track_running_stats=False")
    return out


def _sample_input(rank: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(17 + rank)
    shape = (4, PROBE_CHANNELS) + (3,) * (rank - 2)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)


def _declined(subject, options, device, dtype, rank, training=True):
    """None when the subject takes ``options`` in this mode, else the declining message.
    Other exceptions are not a refusal of the option: they surface in the invariants."""
    try:
        module = subject.build(PROBE_CHANNELS, options=options, device=device, dtype=dtype)
        module.train(training)(_sample_input(rank, dtype, device))
    except SubjectError as exc:
        return declined_option(exc) or None
    except DECLINES as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception:
        return None
    return None


def probe_capabilities(subject: Subject, device: str, space) -> Capabilities:
    """Probe each option of OPTION_VARIANTS and eval mode, in the first dtype and rank
    ``space`` accepts, and the dtype of every module built."""
    if not space:
        return Capabilities()
    dtype_name, ranks = next(iter(space.dtype_ranks.items()))
    dtype, rank = torch_dtype(dtype_name), ranks[0]
    declined = {}
    for name, options in OPTION_VARIANTS.items():
        message = _declined(subject, options, device, dtype, rank)
        if message:
            declined[name] = message
    message = _declined(subject, BNOptions(), device, dtype, rank, training=False)
    if message:
        declined["eval mode"] = message
    return Capabilities(declined, tuple(dropped_dtypes(subject, device)))


def dropped_dtypes(subject: Subject, device: str):
    """'dtype=float64 asked for, weight is torch.float32' for each dtype the subject
    builds in but does not honour (floating parameters and buffers of another dtype)."""
    for name in DTYPE_NAMES:
        try:
            module = subject.build(PROBE_CHANNELS, options=BNOptions(), device=device,
                                   dtype=torch_dtype(name))
        except SubjectError:
            continue
        tensors = [*module.named_parameters(), *module.named_buffers()]
        wrong = [(n, t.dtype) for n, t in tensors
                 if t.is_floating_point() and t.dtype != torch_dtype(name)]
        if wrong:
            n, got = wrong[0]
            yield f"dtype={name} asked for, but {n} is {got}"
