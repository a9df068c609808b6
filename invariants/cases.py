"""Cases: what a subject accepts (Space), one drawn example (Case, DistCase), and how
every family of the catalogue draws them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from hypothesis import strategies as st

from bn_invariants.invariants.params import Params
from bn_invariants.invariants.reference import channel_view
from bn_invariants.strategies import Problem, max_offset_ratio, problems


@dataclass(frozen=True)
class Space:
    """What a subject accepts on one device: dtype name -> accepted ranks."""

    device: str
    dtype_ranks: Mapping[str, tuple]
    refusal: str = ""
    """The first error a refused input raised, to explain an empty space."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """dtype -> why it was refused at every rank (its first error), for the coverage line."""

    def restrict(self, dtypes=None, ranks=None) -> "Space":
        """The part of this space inside ``dtypes`` and ``ranks`` (None: no limit)."""
        kept = {}
        for dtype, accepted in self.dtype_ranks.items():
            if dtypes is not None and dtype not in dtypes:
                continue
            rs = tuple(r for r in accepted if ranks is None or r in ranks)
            if rs:
                kept[dtype] = rs
        return Space(self.device, kept, self.refusal,
                     {d: why for d, why in self.refused.items() if dtypes is None or d in dtypes})

    def __bool__(self) -> bool:
        return bool(self.dtype_ranks)


@dataclass(frozen=True)
class Case:
    """One drawn example: a Problem plus the invariant's own parameters, typed
    (invariants/params.py).  Its repr is Python that rebuilds it."""

    problem: Problem
    params: Params = Params()


@dataclass(frozen=True)
class DistCase(Case):
    """A distributed example: the problem's batch split over W = len(sizes) ranks,
    rank r holding the next ``sizes[r]`` samples."""

    sizes: tuple = ()



def draw_cases(space: Space, params=None, **problem_kwargs) -> st.SearchStrategy[Case]:
    """Cases whose problem lies in ``space``; ``params`` is a strategy of the invariant's
    Params (``drawn(Kind, field=strategy, ...)``; None: no params)."""
    return st.builds(
        Case,
        problem=problems(device=space.device, dtype_ranks=dict(space.dtype_ranks),
                         **problem_kwargs),
        params=params if params is not None else st.just(Params()),
    )


def strengths() -> st.SearchStrategy[float]:
    """A strength in [0, 1] in steps of 1/16, shrinking to 0."""
    return st.integers(0, 16).map(lambda k: k / 16)


def per_channel_offsets(problem, std: torch.Tensor, strength: float, stream: int) -> torch.Tensor:
    """Per-channel constants b with |b|/s up to max_offset_ratio(dtype, n) ** strength,
    random signs, rounded to the problem's dtype; float64, shaped (C,)."""
    gen = problem.generator(stream)
    c = problem.num_features
    ratio = max_offset_ratio(problem.dtype, problem.reduction_length) ** strength
    sign = torch.where(torch.rand(c, generator=gen) < 0.5, -1.0, 1.0).double()
    size = 0.5 + 0.5 * torch.rand(c, generator=gen, dtype=torch.float64)
    b = sign * size * ratio * std.flatten()
    return b.to(problem.torch_dtype).double()


def add_per_channel(values: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """values + b broadcast over channels (float64, exact for float64 inputs)."""
    return values + channel_view(b, values.dim())

