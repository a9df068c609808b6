"""A batch-norm problem: everything needed to rebuild one input, drawn as a few numbers."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import torch
from hypothesis import strategies as st

from bn_invariants.strategies import streams
from bn_invariants.strategies.cotangents import COTANGENTS, cotangents, standardised
from bn_invariants.strategies.dtypes import DTYPE_NAMES, mantissa_bits, torch_dtype
from bn_invariants.strategies.layouts import LAYOUTS, apply_layout, layouts
from bn_invariants.strategies.options import BNOptions, bn_options
from bn_invariants.strategies.regimes import FILLS, REGIMES, regimes
from bn_invariants.strategies.shapes import MAX_CHANNELS, RANKS, reduction_length, shapes


@dataclass(frozen=True)
class Problem:
    """One input to a batch norm, rebuilt exactly from its fields.

    ``repr(problem)`` is a copy-pasteable reproduction: ``Problem(...).input()``
    gives the same tensor on every run and machine (values come from a seeded
    CPU generator, then move to ``device``).
    """

    shape: tuple
    dtype: str = "float32"
    device: str = "cpu"
    layout: str = "contiguous"
    regime: str = "unit"
    severity: float = 0.0
    seed: int = 0
    options: BNOptions = field(default_factory=BNOptions)
    cotangent_regime: str = "normal"
    """How g is drawn (strategies.cotangents); ``problems()`` draws ``informative`` first."""

    @property
    def num_features(self) -> int:
        """C, the channel count."""
        return self.shape[1]

    @property
    def reduction_length(self) -> int:
        """n = N * prod(spatial), the values per channel."""
        return reduction_length(self.shape)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The input's torch dtype."""
        return torch_dtype(self.dtype)

    def generator(self, stream: int = 0) -> torch.Generator:
        """A CPU generator seeded from (seed, stream); streams are independent."""
        return torch.Generator().manual_seed(self.seed * 7919 + stream)

    @cached_property
    def values(self) -> torch.Tensor:
        """The input's values rounded to ``dtype``, held exactly as float64 on the CPU."""
        raw = FILLS[self.regime](self.generator(streams.VALUES), self.shape, self.severity, self.dtype)
        return raw.to(self.torch_dtype).double()

    def input(self, values: torch.Tensor | None = None) -> torch.Tensor:
        """A fresh input tensor (``values`` or the problem's own) in dtype, device, layout."""
        source = self.values if values is None else values
        fresh = source.to(self.torch_dtype).to(self.device)
        if fresh.data_ptr() == source.data_ptr():
            fresh = fresh.clone()  # never hand out the cached values themselves
        return apply_layout(fresh, self.layout)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) as fresh float64 tensors, drawn away from (1, 0): |gamma| in
        [0.5, 2] with either sign, beta in [-2, 2], both rounded to ``dtype``."""
        weight, bias = self._affine
        return weight.clone(), bias.clone()

    @cached_property
    def _affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        gen = self.generator(streams.AFFINE)
        c = self.num_features
        magnitude = 2.0 ** (2 * torch.rand(c, generator=gen, dtype=torch.float64) - 1)
        sign = torch.where(torch.rand(c, generator=gen) < 0.25, -1.0, 1.0).double()
        bias = 4 * torch.rand(c, generator=gen, dtype=torch.float64) - 2
        as_dtype = lambda t: t.to(self.torch_dtype).double()  # noqa: E731
        return as_dtype(sign * magnitude), as_dtype(bias)

    def cotangent(self) -> torch.Tensor:
        """g, the upstream gradient of the output's shape (float64), drawn by the problem's
        cotangent regime from its own standardised values."""
        return self._cotangent.clone()

    @cached_property
    def _cotangent(self) -> torch.Tensor:
        xhat = standardised(self.values, self.options.eps)
        return COTANGENTS[self.cotangent_regime](self.generator(streams.COTANGENT), xhat)

    def summary(self) -> str:
        """shape/dtype/device/layout/regime in one line, no values."""
        opts = self.options
        return (f"{tuple(self.shape)} {self.dtype} on {self.device}, {self.layout}, "
                f"regime {self.regime}@{self.severity:.2f}, seed {self.seed}, eps={opts.eps:g}, "
                f"momentum={opts.momentum}, affine={opts.affine}, "
                f"track_running_stats={opts.track_running_stats}, "
                f"cotangent {self.cotangent_regime}")


def problems(*, device="cpu", dtype_ranks=None, layouts_allowed=LAYOUTS,
             regimes_allowed=tuple(REGIMES), options=None, min_reduction=2,
             max_channels=MAX_CHANNELS, long_reductions=True,
             cotangents_allowed=tuple(COTANGENTS)) -> st.SearchStrategy[Problem]:
    """A Problem on ``device``.

    ``dtype_ranks`` maps each dtype name to the ranks accepted in it (default:
    every dtype, ranks 2-5); ``options`` is a strategy of BNOptions (default:
    ``bn_options()``).  Shrinks towards a small float32 contiguous unit-normal
    input with torch's default options.  Every sub-strategy is built once, here,
    not per draw: generation cost is a dozen choices and a seeded fill.

    >>> p = problems(dtype_ranks={"float64": (2,)}).example(); (p.dtype, len(p.shape))
    ('float64', 2)
    """
    if dtype_ranks is None:
        dtype_ranks = {d: RANKS for d in DTYPE_NAMES}
    usable = [d for d in DTYPE_NAMES if dtype_ranks.get(d)]
    if not usable:
        raise ValueError(f"dtype_ranks={dtype_ranks!r} allows no (dtype, rank) pair")
    dtype_choice = st.sampled_from(usable)
    shape_choice = {d: shapes(ranks=dtype_ranks[d], min_reduction=min_reduction,
                              max_channels=max_channels, long_reductions=long_reductions)
                    for d in usable}
    layout_choice = layouts(allowed=layouts_allowed)
    regime_choice = regimes(allowed=regimes_allowed)
    severity_choice = st.integers(0, 16)
    seed_choice = st.integers(0, 2**32 - 1)
    options_choice = options if options is not None else bn_options()
    cotangent_choice = cotangents(allowed=cotangents_allowed)

    @st.composite
    def draw_problem(draw):
        dtype = draw(dtype_choice, label="dtype")
        return Problem(
            shape=draw(shape_choice[dtype], label="shape"),
            dtype=dtype,
            device=device,
            layout=draw(layout_choice, label="layout"),
            regime=draw(regime_choice, label="regime"),
            severity=draw(severity_choice, label="severity") / 16,
            seed=draw(seed_choice, label="seed"),
            options=draw(options_choice, label="options"),
            cotangent_regime=draw(cotangent_choice, label="cotangent"),
        )

    return draw_problem()


def exact_shift_grid(values: torch.Tensor, shift: torch.Tensor, dtype: str) -> float:
    """A power-of-two step h such that, once ``values`` and ``shift`` are rounded to
    multiples of h, every ``values + shift`` is exact in ``dtype`` (a dyadic grid)."""
    bound = float(values.abs().max()) + float(shift.abs().max())
    top = math.frexp(max(bound, 2.0 ** -30))[1]  # bound < 2**top
    info = torch.finfo(torch_dtype(dtype))
    return max(2.0 ** (top - mantissa_bits(dtype)), info.tiny * info.eps)
