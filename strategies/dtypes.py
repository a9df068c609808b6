"""Floating-point dtypes the suite draws, and the facts about them that strategies need."""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16")
"""In shrink order: a failure is reported in float32 when it also happens there."""

_MANTISSA_BITS = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype called ``name``, e.g. ``torch_dtype("float16") is torch.float16``."""
    if name not in _MANTISSA_BITS:
        raise ValueError(f"dtype={name!r}, but should be one of {DTYPE_NAMES}")
    return getattr(torch, name)


def mantissa_bits(name: str) -> int:
    """Significand precision p, counting the implicit bit: 24 for float32."""
    return _MANTISSA_BITS[name]


def unit_roundoff(name: str) -> float:
    """u = 2**-p, the largest relative error of rounding to nearest: 2**-24 for float32."""
    return 2.0 ** -mantissa_bits(name)


def accumulation_dtype(name: str) -> str:
    """The dtype statistics are accumulated in by the standard: float32 for half types."""
    return "float64" if name == "float64" else "float32"


def finfo(name: str) -> torch.finfo:
    """torch.finfo of the dtype called ``name``."""
    return torch.finfo(torch_dtype(name))


def max_offset_ratio(name: str, reduction_length: int) -> float:
    """Largest |mean|/std that keeps a normalisation check meaningful for the dtype.

    The error of a computed mean, in units of the standard deviation, grows like
    n * u * (1 + |mean|/std) (worst-case summation); past 1 / (64 n u) it would be
    comparable to the output itself.  Capped at 1e8.

    >>> round(max_offset_ratio("float32", 16))
    16384
    """
    n = max(reduction_length, 1)
    return max(1.0, min(1e8, 1.0 / (64.0 * n * unit_roundoff(name))))


def dtypes(*, allowed=DTYPE_NAMES) -> st.SearchStrategy[str]:
    """Dtype names from ``allowed``, shrinking towards float32.

    >>> dtypes(allowed=("float64", "float16")).example() in ("float64", "float16")
    True
    """
    ordered = [d for d in DTYPE_NAMES if d in set(allowed)]
    if not ordered:
        raise ValueError(f"allowed={allowed!r} names none of {DTYPE_NAMES}")
    return st.sampled_from(ordered)


def log2_floor(x: float) -> int:
    """floor(log2(x)) for x > 0, exactly (frexp, no rounding)."""
    return math.frexp(x)[1] - 1
