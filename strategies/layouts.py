"""Memory layouts of one logical (N, C, *) tensor: same values, different strides."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from bn_invariants.strategies.names import names_from

LAYOUTS = ("contiguous", "channels_last", "strided", "offset")
"""contiguous; channels physically last (torch.channels_last for rank 4);
a non-contiguous view (every other element of a wider tensor); a view
into a larger storage starting at a non-zero storage offset."""


def apply_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """A tensor equal to ``t`` element for element, stored in ``layout``.

    >>> apply_layout(torch.ones(2, 3, 4, 4), "channels_last").is_contiguous(
    ...     memory_format=torch.channels_last)
    True
    """
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        return t.movedim(1, -1).contiguous().movedim(-1, 1)
    if layout == "strided":
        wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
        view = wide[..., ::2]
        view.copy_(t)
        return view
    if layout == "offset":
        pad = 3
        storage = torch.empty(t.numel() + pad, dtype=t.dtype, device=t.device)
        view = storage[pad:].view(t.shape)
        view.copy_(t)
        return view
    raise ValueError(f"layout={layout!r}, but should be one of {LAYOUTS}")


def layouts(*, allowed=LAYOUTS) -> st.SearchStrategy[str]:
    """Layout names from ``allowed``, shrinking towards "contiguous".

    >>> layouts(allowed=("strided",)).example()
    'strided'
    """
    return names_from(LAYOUTS, allowed)
