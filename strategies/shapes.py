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
