"""Distributed subjects: batch norms that run inside an initialised process group.

A distributed subject is built like torch.nn.BatchNorm2d, on every rank, and each
rank calls it on its own slice of the global batch.  It runs on the CPU with the
gloo backend, or on CUDA with NCCL (one GPU per rank).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from bn_invariants.invariants.distributed.reference import AllReduceBatchNorm
from bn_invariants.invariants.cases import Space
from bn_invariants.invariants.subjects import Subject, load_subject
from bn_invariants.strategies import RANKS

DIST_DTYPES = ("float32", "float64")
"""The dtypes the distributed family draws (half types: not yet covered)."""
WORLDS = (2, 3, 4)
"""World sizes W drawn for each example."""


@dataclass(frozen=True)
class DistSpace(Space):
    """A Space plus what the distributed strategies need: the world sizes to draw
    and whether one rank may hold an empty slice."""

    worlds: tuple = WORLDS
    empty_slices: bool = False

    def restrict(self, dtypes=None, ranks=None) -> "DistSpace":
        """The part of this space inside ``dtypes`` and ``ranks``, keeping worlds."""
        return replace(self, dtype_ranks=Space.restrict(self, dtypes, ranks).dtype_ranks)


@dataclass(frozen=True)
class DistSubject(Subject):
    """A subject for the distributed family: ``name`` is its ``package.module:Name``
    spec (each worker imports it from there), ``device`` "cpu" (gloo) or "cuda"
    (NCCL), ``empty_slices`` whether a rank may be handed an empty slice."""

    device: str = "cpu"
    empty_slices: bool = False

    @property
    def backend(self) -> str:
        """The torch.distributed backend for this subject's device."""
        return "nccl" if self.device == "cuda" else "gloo"

    def space(self) -> DistSpace:
        """Everything the distributed family may draw for this subject; the plugin
        narrows it to what the subject takes (``distributed.probe``)."""
        return DistSpace(self.device, {d: RANKS for d in DIST_DTYPES}, "",
                         worlds=tuple(w for w in WORLDS if w <= max_world(self.device)),
                         empty_slices=self.empty_slices)


def max_world(device: str) -> int:
    """The largest world this machine runs: 4 ranks on the CPU, one per GPU on CUDA."""
    if device != "cuda":
        return max(WORLDS)
    import torch
    return min(max(WORLDS), torch.cuda.device_count() if torch.cuda.is_available() else 0)


def unavailable(subject: DistSubject) -> str:
    """Why ``subject`` cannot run on this machine, or '' when it can."""
    if subject.device == "cuda" and max_world("cuda") < min(WORLDS):
        return (f"{subject} runs only on CUDA with NCCL, one GPU per rank (torch's "
                f"SyncBatchNorm refuses CPU input): needs at least {min(WORLDS)} GPUs, "
                f"found {max_world('cuda')}")
    return ""


def dist_subject(spec: str, device: str = "cpu") -> DistSubject:
    """The distributed subject named by ``package.module:Name``; SubjectError if it
    cannot be loaded.  It may hold an empty slice when its class says
    ``accepts_empty_slice = True``."""
    loaded = load_subject(spec, "--bn-dist-impl")
    return DistSubject(spec, loaded.factory, device,
                       bool(getattr(loaded.factory, "accepts_empty_slice", False)))


REFERENCE_DIST_SUBJECT = DistSubject(
    "bn_invariants.invariants.distributed.reference:AllReduceBatchNorm", AllReduceBatchNorm, "cpu",
    True)
"""The reference: all-reduce of counts, sums and centred second moments (gloo, CPU)."""
TORCH_SYNC_SUBJECT = DistSubject("torch.nn:SyncBatchNorm", nn.SyncBatchNorm, "cuda", True)
"""torch's own: CUDA with NCCL only; it supports empty slices."""
BUILTIN_DIST_SUBJECTS = (REFERENCE_DIST_SUBJECT, TORCH_SYNC_SUBJECT)
"""What a plain ``pytest`` checks in the distributed family."""
