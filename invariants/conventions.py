"""Declared conventions: design choices a batch norm may make that differ from torch's.

A subject declares them (``--bn-running-var``, ``--bn-momentum``, ``--bn-frozen``, or the
ini keys of the same names); the invariants that depend on one check the declared one.

* running variance: ``unbiased`` (torch: the batch variance times n/(n−1)) or ``biased``
  (the batch variance itself, as Keras, Flax and most teaching code keep it);
* momentum: ``torch`` (new = (1−m)·old + m·batch) or ``keep`` (Keras: new = m·old +
  (1−m)·batch);
* frozen: an eval-only batch norm (torchvision's FrozenBatchNorm2d): training mode
  behaves as eval, so only the invariants in FROZEN_INVARIANTS apply.
"""
from __future__ import annotations

from dataclasses import dataclass

RUNNING_VAR = ("unbiased", "biased")
MOMENTUM = ("torch", "keep")

FROZEN_INVARIANTS = frozenset({
    "eval-affine-map", "eval-no-state-change", "eval-per-sample-independence",
    "eval-no-attribute-change", "input-not-modified", "deterministic-forward",
    "layout-independence", "spatial-permutation", "running-stats-no-autograd-history",
    "device-agreement",
})
"""The invariants that hold for an eval-only batch norm: those of eval mode, and those
that hold for any per-channel map (layouts, determinism, no side effects)."""


@dataclass(frozen=True)
class Conventions:
    """The conventions a subject declares; torch's by default."""

    running_var: str = "unbiased"
    momentum: str = "torch"
    frozen: bool = False

    def __post_init__(self):
        if self.running_var not in RUNNING_VAR:
            raise ValueError(f"running_var={self.running_var!r}, but should be one of {RUNNING_VAR}")
        if self.momentum not in MOMENTUM:
            raise ValueError(f"momentum={self.momentum!r}, but should be one of {MOMENTUM}")

    def batch_weight(self, momentum: float) -> float:
        """The weight of the batch's statistic in one running update with ``momentum``."""
        return momentum if self.momentum == "torch" else 1.0 - momentum

    def variance_factor(self, n: int) -> float:
        """What the biased batch variance of n values is multiplied by before it is
        folded into running_var: n/(n−1) (unbiased) or 1 (biased)."""
        return n / (n - 1) if self.running_var == "unbiased" and n > 1 else 1.0

    def applies(self, invariant_id: str) -> bool:
        """Whether ``invariant_id`` is checked under these conventions."""
        return not self.frozen or invariant_id in FROZEN_INVARIANTS

    def flags(self) -> list:
        """The command-line flags that declare these conventions (none for torch's)."""
        out = []
        if self.running_var != "unbiased":
            out.append(f"--bn-running-var={self.running_var}")
        if self.momentum != "torch":
            out.append(f"--bn-momentum={self.momentum}")
        if self.frozen:
            out.append("--bn-frozen")
        return out


_DECLARED = [Conventions()]


def declare(conventions: Conventions) -> None:
    """Make ``conventions`` the ones the invariants check (the plugin calls this once)."""
    _DECLARED[0] = conventions


def declared() -> Conventions:
    """The conventions in force (torch's unless declared otherwise)."""
    return _DECLARED[0]
