"""Drawing a distributed example: a problem, a world size W and W uneven slices."""
from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import strategies as st

from bn_invariants.invariants.params import Params
from bn_invariants.invariants.cases import DistCase
from bn_invariants.strategies import problems

MAX_SLICE = 4
"""Largest number of samples one rank holds (so N <= 4 W)."""


def slice_bounds(sizes) -> list[tuple[int, int]]:
    """[start, stop) of each rank's samples for slice sizes ``sizes``.

    >>> slice_bounds((2, 0, 1))
    [(0, 2), (2, 2), (2, 3)]
    """
    bounds, start = [], 0
    for size in sizes:
        bounds.append((start, start + size))
        start += size
    return bounds


def slice_sizes(world: int, empty_slices: bool) -> st.SearchStrategy[tuple]:
    """W slice sizes in 1..MAX_SLICE (shrinking to single samples), one of them
    possibly 0 when ``empty_slices``."""
    sizes = st.lists(st.integers(1, MAX_SLICE), min_size=world, max_size=world)
    if not empty_slices:
        return sizes.map(tuple)
    empty = st.sampled_from((None,) + tuple(range(world)))
    return st.tuples(sizes, empty).map(
        lambda pair: tuple(0 if r == pair[1] else s for r, s in enumerate(pair[0])))


def dist_cases(space, params=None, **problem_kwargs) -> st.SearchStrategy[DistCase]:
    """DistCases whose ``sizes`` hold one slice size per rank (W = len(sizes)) and whose
    problem's batch is their sum; the rest of the problem is drawn as usual (short
    reductions, at most 16 channels), in ``space`` (a DistSpace); ``params`` is a
    strategy of the invariant's Params (None: no params)."""
    problem_choice = problems(device=space.device, dtype_ranks=dict(space.dtype_ranks),
                              max_channels=16, long_reductions=False, **problem_kwargs)
    world_choice = st.sampled_from(space.worlds)
    size_choice = {w: slice_sizes(w, space.empty_slices) for w in space.worlds}
    extra = params if params is not None else st.just(Params())

    @st.composite
    def draw_case(draw):
        world = draw(world_choice, label="world")
        sizes = list(draw(size_choice[world], label="sizes"))
        problem = draw(problem_choice, label="problem")
        spatial = math.prod(problem.shape[2:])
        if sum(sizes) * spatial < 2:  # training needs two values per channel
            sizes[next(r for r, s in enumerate(sizes) if s)] += 1
        problem = replace(problem, shape=(sum(sizes),) + tuple(problem.shape[1:]))
        return DistCase(problem, draw(extra, label="params"), tuple(sizes))

    return draw_case()
