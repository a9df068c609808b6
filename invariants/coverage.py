"""Find out which ranks and dtypes a subject accepts on a device."""
from __future__ import annotations

import torch

from bn_invariants.invariants.assertions import is_device_fault
from bn_invariants.invariants.cases import Space
from bn_invariants.invariants.subjects import Subject, SubjectError
from bn_invariants.strategies import DTYPE_NAMES, RANKS, BNOptions, torch_dtype

PROBE_CHANNELS = 3


def _probe_input(rank: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(rank)
    shape = (4, PROBE_CHANNELS) + (2,) * (rank - 2)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)


def probe(subject: Subject, device: str, breaks: dict | None = None) -> Space:
    """The (dtype -> ranks) a subject accepts in training mode on ``device``.

    An input is accepted when the forward pass returns without raising.  An
    output of the wrong type, shape or dtype is not a refusal but a broken output
    contract: that (dtype, rank) is left out of the space and its message is put in
    ``breaks[(dtype, rank)]``, so the other ranks are still checked.  When nothing
    else is accepted, or a factory raises for every dtype: SubjectError.
    """
    breaks = {} if breaks is None else breaks
    accepted, build_errors, refusals, refused = {}, [], [], {}
    for name in DTYPE_NAMES:
        dtype = torch_dtype(name)
        try:
            module = subject.build(PROBE_CHANNELS, options=BNOptions(), device=device, dtype=dtype)
        except SubjectError as exc:
            build_errors.append(str(exc))
            refused[name] = _short(str(exc).split(" raised ", 1)[-1])
            continue
        module.train()
        ranks = []
        for rank in RANKS:
            x = _probe_input(rank, dtype, device)
            try:
                y = module(x)
            except Exception as exc:
                if is_device_fault(exc):
                    raise
                refusals.append(f"{type(exc).__name__}: {exc}")
                refused.setdefault(name, _short(refusals[-1]))
                continue
            broken = _unlike(subject, x, y)
            if broken:
                breaks[(name, rank)] = broken
                continue
            ranks.append(rank)
        if ranks:
            accepted[name] = tuple(ranks)
            refused.pop(name, None)
    if len(build_errors) == len(DTYPE_NAMES):
        raise SubjectError(build_errors[0])
    if breaks and not accepted:
        raise SubjectError(next(iter(breaks.values())))
    return Space(device, accepted, refusals[0] if refusals else "", refused)


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 120 else line[:119] + "…"


def _unlike(subject: Subject, x: torch.Tensor, y) -> str:
    """Why ``y`` breaks the output contract for input ``x`` ('' when it keeps it)."""
    if not isinstance(y, torch.Tensor):
        return (f"{subject} returned a {type(y).__name__} for a {tuple(x.shape)} "
                f"{x.dtype} input, but should return a tensor")
    if y.shape != x.shape or y.dtype != x.dtype:
        return (f"{subject} returned {tuple(y.shape)} {y.dtype} for a "
                f"{tuple(x.shape)} {x.dtype} input, but should return the "
                f"input's shape and dtype")
    return ""


def describe(space: Space) -> str:
    """e.g. 'float32: ranks 2,3; float64: ranks 2,3' or 'accepts no input'."""
    if not space:
        return "accepts no input"
    parts = [f"{d}: rank{'s' if len(r) > 1 else ''} {','.join(map(str, r))}"
             for d, r in space.dtype_ranks.items()]
    if space.refused:  # a dtype left out is said, with why: a contract torch keeps
        reasons: dict = {}
        for dtype, why in space.refused.items():
            reasons.setdefault(why, []).append(dtype)
        parts += [f"refuses {', '.join(dtypes)} at every rank ({why})"
                  for why, dtypes in reasons.items()]
    return "; ".join(parts)
