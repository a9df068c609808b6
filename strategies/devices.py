"""Devices: which ones exist here, and drawing among them."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

DEVICE_KINDS = ("cpu", "cuda")


def available_devices() -> tuple[str, ...]:
    """Devices this process can run on: "cpu", and "cuda" when a GPU is visible.

    ``torch.cuda.is_available()`` asks the driver for a device count without
    creating a CUDA context, so calling this does not initialise CUDA.
    """
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def devices(*, allowed=None) -> st.SearchStrategy[str]:
    """Device names drawn from ``allowed`` (default: all available), "cpu" first.

    >>> devices(allowed=("cpu",)).example()
    'cpu'
    """
    pool = tuple(allowed) if allowed is not None else available_devices()
    if not pool:
        raise ValueError("allowed names no device")
    return st.sampled_from(pool)
