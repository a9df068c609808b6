"""The wild zoo: batch norms written the way real libraries, courses and users write
them, with their real conventions and real defects (docs/checking-a-real-batch-norm.md).

``CASES`` lists each one with the flags it is meant to be checked under and the
verdict the suite gives it; tests/test_wild.py holds the suite to those verdicts.
Check one yourself: ``pytest --bn-impl=bn_invariants.zoo.wild.frozen:frozen_batch_norm --bn-frozen``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WildCase:
    """A real-world batch norm, how to check it, and what the suite says."""

    spec: str
    flags: tuple
    exit_code: int
    verdict: str


CASES = (
    WildCase("torch.nn:SyncBatchNorm", (), 0,
             "passes; torch's own deviations reported as inherited"),
    WildCase("bn_invariants.zoo.wild.torch_kernel:BatchNormAct2d", (), 0,
             "passes (rank 4); torch's own deviations reported as inherited"),
    WildCase("bn_invariants.zoo.wild.torch_kernel:lazy_batch_norm_2d", (), 0,
             "passes (rank 4) once materialised by a first forward"),
    WildCase("bn_invariants.zoo.wild.frozen:frozen_batch_norm", ("--bn-frozen",), 0,
             "passes the eval-mode invariants; affine=False and track_running_stats=False "
             "declined"),
    WildCase("bn_invariants.zoo.wild.frozen:frozen_batch_norm", (), 1,
             "fails the training invariants; the summary suggests --bn-frozen"),
    WildCase("bn_invariants.zoo.wild.teaching:CourseBatchNorm", ("--bn-running-var=biased",), 0,
             "passes; momentum=None declined"),
    WildCase("bn_invariants.zoo.wild.teaching:CourseBatchNorm", (), 1,
             "running statistics fail; the summary suggests --bn-running-var=biased"),
    WildCase("bn_invariants.zoo.wild.teaching:KerasStyleBatchNorm",
             ("--bn-running-var=biased", "--bn-momentum=keep"), 0, "passes; momentum=None declined"),
    WildCase("bn_invariants.zoo.wild.overflow:CheckedBatchNorm", (), 0,
             "passes: its OverflowError is a clear error"),
    WildCase("bn_invariants.zoo.wild.defects:UnsqueezedRank2BatchNorm", (), 1,
             "output-contract fails for rank 2 only; ranks 3 to 5 are checked"),
    WildCase("bn_invariants.zoo.wild.defects:GraphKeepingBatchNorm", (), 1,
             "running-stats-no-autograd-history fails"),
    WildCase("bn_invariants.zoo.wild.defects:AttributeStatsBatchNorm", (), 1,
             "eval-no-attribute-change fails"),
    WildCase("bn_invariants.zoo.wild.defects:HardEpsBatchNorm", (), 1, "eps-honoured fails"),
    WildCase("bn_invariants.zoo.wild.teaching:ViewBatchNorm", ("--bn-running-var=biased",), 1,
             "spatial-permutation fails: x.view raises on permuted spatial dimensions"),
    WildCase("bn_invariants.zoo.wild.defects:DtypeDroppingBatchNorm", (), 1,
             "construction-contract fails once: dtype=float64 asked, float32 built"),
    WildCase("bn_invariants.zoo.wild.defects:PackedAffineBatchNorm", (), 0,
             "passes: weight and bias as properties"),
    WildCase("bn_invariants.zoo.wild.not_batch_norms:identity", (), 1,
             "one verdict: does not normalise over the batch"),
    WildCase("bn_invariants.zoo.wild.not_batch_norms:layer_norm", (), 1,
             "one verdict: does not normalise over the batch"),
)
"""Each real-world case with its flags and verdict (exit code of the run)."""
