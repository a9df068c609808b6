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


def ulp(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """The spacing of ``dtype`` at each |value| (float64 in, float64 out): 2**(e - p)
    for |v| in [2**(e-1), 2**e), and the subnormal spacing below the smallest normal."""
    _, exponent = torch.frexp(values.double())
    lowest = torch.frexp(torch.tensor(finfo(dtype).tiny, dtype=torch.float64))[1]
    return torch.ldexp(torch.ones_like(values, dtype=torch.float64),
                       torch.maximum(exponent, lowest) - mantissa_bits(dtype))


def accumulation_dtype(name: str) -> str:
    """The dtype statistics are accumulated in by the standard: float32 for half types."""
    return "float64" if name == "float64" else "float32"


def finfo(name: str) -> torch.finfo:
    """torch.finfo of the dtype called ``name``."""
    return torch.finfo(torch_dtype(name))


RANDOM_ROUNDING_LIMIT = 1.0 / 16
"""n u (1 + |mu|/sigma) up to which a sum's rounding errors behave as random
(SUMMATION_MODEL): the ulp of the partial sums at most sigma/8.  torch's CPU kernel,
measured at n = 10^5, turns systematic near 2: a factor 32 from this limit."""


def blocked_summation_factor(n: int) -> float:
    """min(n, 2 sqrt(n)): a sum in b-term blocks, b = sqrt(n), is within
    γ_{b-1} + γ_{n/b} <= 2 sqrt(n) u of its l1 mass, in the worst case."""
    n = max(n, 1)
    return min(float(n), 2.0 * math.sqrt(n))


SUMMATION_MODEL = (
    "A sum of n values computed with unit roundoff u is within k(n)·u·Σ|xᵢ| of the exact sum. "
    "In the worst case, in any order, k(n) = n (γ₍ₙ₋₁₎ ≤ 2(n−1)u while nu ≤ 1/2; Higham 2002, "
    "§4.2). The bounds use k(n) = min(n, 2√n) per channel where rounding errors are random: "
    "while n·u·(1 + |μ|/σ) ≤ 1/16, the ulp of every partial sum, at most 2u·n·(|μ| + σ), is "
    "below σ/8, so each rounding error depends on low-order bits of the data and behaves as an "
    "independent zero-mean variable. Even a one-thread running sum is then within λ√n·u·Σ|xᵢ| "
    "with probability 1 − 2n·exp(−λ²/2) (Higham & Mary 2019), and a blocked sum (blocks of √n "
    "terms) is within 2√n·u in the worst case. Past that limit the errors turn systematic, all "
    "values rounding the same way, and k(n) = n. Measured on torch's CPU kernel at n = 10⁵: "
    "below 0.5√n up to |μ|/σ = 200 (n·u·(1 + |μ|/σ) = 1.2), 670 at 400, and 0.24·n at 1600. "
    "A sum of squares is not zero-mean: a term below half an ulp of the running sum is lost "
    "whole, always downwards, and for Gaussian values that bias is about 0.53·(n·u)^1.5 of the "
    "sum, above 2√n·u once n·√u passes about 4 (a thorough run caught torch at 1.06 to 1.17× "
    "the bound at n = 10⁵ in float32, heavy tails). So k(n) = 2√n also needs n·√u ≤ 1 "
    "(n ≤ 4096 in float32, any n in float64); beyond, k(n) = n.")
"""The summation model in words, as the catalogue shows it."""


def summation_factor(n: int, u: float = 0.0, ratio=float("inf")):
    """k(n) (SUMMATION_MODEL): min(n, 2 sqrt(n)) where n u (1 + ratio) is at most
    RANDOM_ROUNDING_LIMIT, ``ratio`` = |mu|/sigma; else n.  ``ratio`` may be a per-channel
    tensor (inf for a constant channel): k is then one too.  The defaults (u = 0,
    ratio = inf) give the worst case, n."""
    n = max(n, 1)
    blocked = blocked_summation_factor(n)
    if u <= 0 or n * math.sqrt(u) > 1:  # positive summands: truncation bias (SUMMATION_MODEL)
        return float(n) if not isinstance(ratio, torch.Tensor) else torch.full_like(ratio, float(n))
    if isinstance(ratio, torch.Tensor):
        random = u * n * (1 + ratio) <= RANDOM_ROUNDING_LIMIT
        return torch.where(random, blocked, float(n))
    random = u * n * (1 + ratio) <= RANDOM_ROUNDING_LIMIT
    return blocked if random else float(n)


def max_offset_ratio(name: str, reduction_length: int, accumulated: bool = False) -> float:
    """Largest |mean|/std that keeps a normalisation check meaningful for the dtype.

    The error of a computed mean, in units of the standard deviation, grows like
    n * u * (1 + |mean|/std) (worst-case summation); past 1 / (64 n u) it would be
    comparable to the output itself, and rounding errors stop behaving randomly.
    ``accumulated``: the range for the statistics themselves, where E[x^2] - E[x]^2
    shows: u of the accumulation dtype (float32 for half types), up to the larger of
    the ratio at which a blocked sum's mean is 1/64 of std off, 1 / (128 sqrt(n) u),
    and 8 / sqrt(u), past which E[x^2] - E[x]^2 loses every bit of the variance (it
    comes out zero or negative) while a sum of squares stays positive.  Capped at 1e8, and
    at a quarter of the dtype's largest value, so that the values themselves (about
    |mean| + 5 std, std 1) stay finite: float16's 65504 is reached at n = 2 otherwise.

    >>> round(max_offset_ratio("float32", 16))
    16384
    """
    n = max(reduction_length, 1)
    if accumulated:
        u = unit_roundoff(accumulation_dtype(name))
        largest = min(1e8, finfo(name).max / 4)
        return min(largest, max(1.0 / (64.0 * blocked_summation_factor(n) * u), 8.0 / math.sqrt(u)))
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
