"""Input shapes (N, C, *spatial) for ranks 2 to 5."""
from __future__ import annotations

import itertools
import math

from hypothesis import strategies as st

RANKS = (2, 3, 4, 5)
LONG_REDUCTION = 100_000
"""Values per channel in a long-reduction shape."""


MAX_CHANNELS = 70
"""The most channels a drawn shape has (invariants that pick a channel index use it)."""


def reduction_length(shape) -> int:
    """Values per channel: N * prod(spatial)."""
    return shape[0] * math.prod(shape[2:])


def _long_shape(rank: int, channels: int) -> tuple[int, ...]:
    if rank == 2:
        return (LONG_REDUCTION, channels)
    side = math.ceil((LONG_REDUCTION / 2) ** (1 / (rank - 2)))
    return (2, channels) + (side,) * (rank - 2)


def length_shape(rank: int, channels: int, n: int = 4096) -> tuple[int, ...]:
    """A shape of ``rank`` with ``channels`` channels and exactly ``n`` values per channel
    (``n`` a power of two of at least 2**(rank - 2)): a long reduction of a given length.

    >>> length_shape(4, 3)
    (4, 3, 32, 32)
    """
    if rank == 2:
        return (n, channels)
    spatial = n // 4
    sides, volume = [], 1
    for k in range(rank - 2, 0, -1):
        side = 2 ** math.ceil(math.log2(spatial // volume) / k)
        side = min(side, spatial // volume)
        sides.append(side)
        volume *= side
    return (n // volume, channels) + tuple(sides)


def rows_shape(rank: int, channels: int, n: int, *, rows: int = 3) -> tuple[int, ...]:
    """A shape of ``rank`` with ``channels`` channels and exactly ``n`` values per channel,
    for any ``n`` (one not a power of two, say 2**17 + 1 = 3 x 43691): (n, C) at rank 2,
    else ``rows`` samples of n / rows values along the last spatial side, the other sides 1.

    >>> rows_shape(4, 2, 2**17 + 1)
    (3, 2, 1, 43691)
    """
    if rank == 2:
        return (n, channels)
    if n % rows:
        raise ValueError(f"n={n} is not a multiple of rows={rows}")
    return (rows, channels) + (1,) * (rank - 3) + (n // rows,)


def spatial_sizes(dims: int, max_side: int) -> list[tuple[int, ...]]:
    """Every spatial size with ``dims`` sides in 1..max_side, smallest volume first.

    >>> spatial_sizes(2, 2)
    [(1, 1), (1, 2), (2, 1), (2, 2)]
    """
    sizes = itertools.product(range(1, max_side + 1), repeat=dims)
    return sorted(sizes, key=lambda size: (math.prod(size), size))


def shapes(*, ranks=RANKS, min_reduction=2, max_batch=8, max_channels=MAX_CHANNELS,
           max_side=5, long_reductions=True) -> st.SearchStrategy[tuple]:
    """An (N, C, *spatial) shape whose rank is in ``ranks``.

    N shrinks to the smallest legal batch: enough for ``min_reduction`` values per
    channel (training needs 2).  C runs from 1 to past 64; spatial sides include 1.
    About one draw in 25 is a long reduction of ~1e5 values per channel.  The
    spatial size is one choice (smallest volume first), so a shape costs at most
    five choices whatever its rank.

    >>> shape = shapes(ranks=(4,)).example(); len(shape)
    4
    """
    rank_choice = st.sampled_from(tuple(sorted(ranks)))
    channel_choice = st.integers(1, max_channels)
    spatial_choice = {r: st.sampled_from(spatial_sizes(r - 2, max_side)) for r in ranks}
    long_choice = st.integers(0, 24)

    @st.composite
    def draw_shape(draw):
        rank = draw(rank_choice, label="rank")
        channels = draw(channel_choice, label="channels")
        spatial = draw(spatial_choice[rank], label="spatial")
        smallest_batch = max(1, math.ceil(min_reduction / math.prod(spatial)))
        batch = draw(st.integers(smallest_batch, max(smallest_batch, max_batch)), label="batch")
        # Drawn last, so a long shape costs as many choices as a small one and
        # shrinking (which prefers fewer choices) still heads for small shapes.
        if long_reductions and draw(long_choice, label="long") == 24:
            return _long_shape(rank, min(channels, 3))
        return (batch, channels) + spatial

    return draw_shape()
