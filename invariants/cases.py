"""Drawing Cases: what every family of the catalogue draws its examples with."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from bn_invariants.invariants.params import Params
from bn_invariants.invariants.registry import Case, Space
from bn_invariants.invariants.reference import channel_view
from bn_invariants.strategies import bn_options, max_offset_ratio, problems


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


TRACKED = bn_options(track_running_stats=True)
"""Options drawn with running statistics, for the invariants that read them."""
