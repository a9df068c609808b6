"""Batch-norm constructor options: eps, momentum, affine, track_running_stats."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional

from hypothesis import strategies as st

EPS_VALUES = (1e-5, 1e-3, 1e-1, 1e-7, 1.0)
MOMENTUM_VALUES = (0.1, None, 0.0, 0.5, 1.0, 0.01)


@dataclass(frozen=True)
class BNOptions:
    """The options of ``torch.nn.BatchNorm2d(num_features, ...)``, torch's defaults."""

    eps: float = 1e-5
    momentum: Optional[float] = 0.1
    affine: bool = True
    track_running_stats: bool = True

    def kwargs(self) -> dict:
        """Keyword arguments for a BatchNorm-style constructor."""
        return {
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
        }


def bn_options(*, eps=EPS_VALUES, momentum=MOMENTUM_VALUES, affine=None,
               track_running_stats=None) -> st.SearchStrategy[BNOptions]:
    """Options drawn from the given values; ``affine``/``track_running_stats``
    fixed when a bool is passed, drawn when None.  Shrinks towards torch's defaults.

    >>> bn_options(affine=False).example().affine
    False
    """
    choices = [
        BNOptions(e, m, a, t)
        for e, m, a, t in itertools.product(
            tuple(eps), tuple(momentum),
            (True, False) if affine is None else (affine,),
            (True, False) if track_running_stats is None else (track_running_stats,))
    ]
    return st.sampled_from(choices)  # one choice, not four: cheaper to draw
