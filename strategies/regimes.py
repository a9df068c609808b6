"""Named value regimes: how the values of an input are distributed, drawn on purpose.

Each regime fills a float64 tensor from a seeded torch generator, so Hypothesis
draws only (regime, severity, seed) and large tensors cost no shrinking.
``severity`` in [0, 1] sets how hard the regime pushes; 0 is its mildest form.
"""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from bn_invariants.strategies.dtypes import finfo, max_offset_ratio, torch_dtype, ulp
from bn_invariants.strategies.names import names_from
from bn_invariants.strategies.shapes import reduction_length


def _normal(gen, shape):
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def _uniform(gen, shape, low, high):
    return low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)


def _per_channel(shape, values):
    return values.view((1, shape[1]) + (1,) * (len(shape) - 2))


def unit(gen, shape, severity, dtype):
    """Standard normal values."""
    return _normal(gen, shape)


def offset(gen, shape, severity, dtype):
    """Channels around large per-channel means, |mean|/std up to
    ``max_offset_ratio(dtype, n, accumulated=True)``, the limit for statistics accumulated
    in float32 (half types) or the dtype: what exposes E[x^2] - E[x]^2.

    Unit-variance noise, except where the dtype's spacing at the mean passes 2 (float16
    from 4096, bfloat16 from 512): unit noise would collapse onto one value there, so the
    channel holds two neighbouring values of the dtype instead, the one further from zero
    at a fraction in [1/n, 1/sqrt(n)] of the entries.  Low-precision activations look like
    this; |mean|/std reaches about 2**p * sqrt(n), where E[x^2] - E[x]^2 breaks down."""
    ratio = max_offset_ratio(dtype, reduction_length(shape), accumulated=True) ** severity
    signs = torch.where(torch.rand(shape[1], generator=gen) < 0.5, -1.0, 1.0).double()
    means = signs * ratio * _uniform(gen, (shape[1],), 0.5, 1.0)
    gaussian = _normal(gen, shape) + _per_channel(shape, means)
    return torch.where(_per_channel(shape, ulp(means, dtype) > 2),
                       _two_levels(gen, shape, means, dtype), gaussian)


def _two_levels(gen, shape, means, dtype):
    """Each channel's mean rounded to ``dtype``, and the next value away from zero at a
    fraction 2**-(f log2 n), f uniform in [0.5, 1], of the entries."""
    levels = means.to(torch_dtype(dtype)).double()
    n = reduction_length(shape)
    fraction = 2.0 ** (-math.log2(n) * _uniform(gen, (shape[1],), 0.5, 1.0))
    rare = torch.rand(shape, generator=gen, dtype=torch.float64) < _per_channel(shape, fraction)
    step = _per_channel(shape, levels.sign() * ulp(levels, dtype))
    return _per_channel(shape, levels) + step * rare


def tiny_variance(gen, shape, severity, dtype):
    """Variance far below a typical eps: std from 1e-3 down to 1e-3 * 1e-4."""
    return _normal(gen, shape) * 1e-3 * 10.0 ** (-4 * severity)


def constant_channels(gen, shape, severity, dtype):
    """Half the channels (all of them at severity 1) hold one repeated value."""
    values = _normal(gen, shape)
    levels = _per_channel(shape, 4 * _normal(gen, (shape[1],)))
    constant = _per_channel(shape, torch.rand(shape[1], generator=gen) < 0.5 + 0.5 * severity)
    return torch.where(constant, levels, values)


def heavy_tails(gen, shape, severity, dtype):
    """Normal values with 1% outliers up to 10**(1 + 3 severity) times larger."""
    values = _normal(gen, shape)
    outlier = torch.rand(shape, generator=gen) < 0.01
    scale = 10.0 ** (1 + 3 * severity) * _uniform(gen, shape, 0.5, 1.0)
    return torch.where(outlier, values.sign() * scale, values)


def mixed_scales(gen, shape, severity, dtype):
    """Channels whose scales differ by up to 10**(2 decades) within the dtype's range."""
    decades = 1 + severity * min(8.0, math.log10(finfo(dtype).max) / 3)
    scales = 10.0 ** _uniform(gen, (shape[1],), -decades, decades)
    return _normal(gen, shape) * _per_channel(shape, scales)


def magnitude(gen, shape, severity, dtype):
    """The whole tensor scaled by 2**e, |e| up to where n * x^2 still fits the dtype."""
    info = finfo(dtype)
    n = reduction_length(shape)
    top = math.log2(math.sqrt(info.max / (64 * n)))
    bottom = max(0.0, -math.log2(math.sqrt(info.tiny)) - 10)
    sign = -1 if torch.rand((), generator=gen) < 0.5 else 1
    exponent = round(severity * (top if sign > 0 else bottom)) * sign
    return _normal(gen, shape) * 2.0 ** exponent


REGIMES = {
    fill.__name__: fill
    for fill in (unit, offset, tiny_variance, constant_channels, heavy_tails,
                 mixed_scales, magnitude)
}
"""Regime name -> fill(generator, shape, severity, dtype) -> float64 tensor."""


def positions(shape) -> torch.Tensor:
    """Each value's position within its channel, 0 to n - 1, as float64 of shape
    (N, 1, *spatial): the batch index, then the spatial ones, row-major (the order of a
    channel's values in memory, contiguous or channels-last).

    >>> positions((2, 3, 2)).flatten().tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    n = reduction_length(shape)
    return torch.arange(n, dtype=torch.float64).reshape((shape[0], 1) + tuple(shape[2:]))


def positional(gen, shape, severity, dtype):
    """Statistics that depend on position along each channel (``positions``): unit
    normal noise, plus a ramp from -1 to 1, a step of 2 at the middle and one outlier of
    (1 + severity) sqrt(n) / 2 at the last position, each of either sign per channel.

    Every part of a channel moves its statistics: a prefix (the first 2**16 of 2**17 + 1
    values) misses the step, half the ramp and the outlier, so its mean is 0.3 to 0.7
    sigma off and its variance half or less (tests/test_long_paths.py measures it); the
    last value alone holds a quarter to a half of the variance at severity 1, which a
    loop that stops one short loses; a short last chunk weighted like a full one, or chunk
    means merged without the between-chunk term, move the mean or the variance as much.
    The output then moves by a large fraction of sigma, far outside the float32 tolerance
    at 2**17 values (about 0.03 (1 + |mu|/s + |x̂|)), where an i.i.d. regime's prefix has
    nearly the statistics of the whole.

    Not drawn by ``regimes()``: the long-path cases every run checks
    (``invariants.runner.Target.long_cases``) build it; at the search's lengths it adds
    nothing ``heavy_tails`` does not."""
    n = reduction_length(shape)
    c = shape[1]
    at = positions(shape)
    ramp = 2 * at / max(n - 1, 1) - 1
    step = 2.0 * (at >= n // 2)
    outlier = (1 + severity) * math.sqrt(n) / 2 * (at == n - 1)
    ramp_sign, step_sign, outlier_sign = (
        _per_channel(shape, torch.where(torch.rand(c, generator=gen) < 0.5, -1.0, 1.0).double())
        for _ in range(3))
    return _normal(gen, shape) + ramp_sign * ramp + step_sign * step + outlier_sign * outlier


POSITIONAL_REGIMES = {"positional": positional}
"""Regimes whose statistics depend on position, for the long-path cases only: never drawn."""

FILLS = {**REGIMES, **POSITIONAL_REGIMES}
"""Every regime a Problem may name, drawn or not: name -> fill."""


def regimes(*, allowed=tuple(REGIMES)) -> st.SearchStrategy[str]:
    """Regime names from ``allowed``, shrinking towards "unit".

    >>> regimes(allowed=("offset",)).example()
    'offset'
    """
    return names_from(tuple(REGIMES), allowed)
