"""Deviations a subject inherits from torch's own kernel.

A subject that calls torch's batch norm (a subclass, a wrapper, SyncBatchNorm) breaks
an invariant exactly where torch does.  When it fails a counterexample and torch's own
``F.batch_norm`` or the matching ``torch.nn.BatchNorm{1,2,3}d`` fails the same
counterexample in the same way, the failure is inherited: reported as torch's, naming the
known deviation when one is recorded, not as the subject's bug.  "The same way" means it
behaves like torch there: the same invariant, the same quantity out of bounds, and the
subject's values of that quantity within the invariant's tolerance of torch's, element by
element (the same statement where the violation compares no values).  torch is judged
under its own conventions, never under one the user declared for the subject.
"""
from __future__ import annotations

import re

from torch import nn

from bn_invariants.invariants.assertions import InvariantViolation
from bn_invariants.invariants.conventions import Conventions, declare, declared
from bn_invariants.invariants.known_deviations import DEVIATIONS
from bn_invariants.invariants.runner import check_case
from bn_invariants.invariants.subjects import FunctionalBatchNorm, Subject

_BY_RANK = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}


def torch_counterparts(rank: int) -> tuple:
    """torch's own batch norms that take rank-``rank`` input."""
    return (Subject("torch.nn.functional.batch_norm", FunctionalBatchNorm),
            Subject(f"torch.nn.{_BY_RANK[rank].__name__}", _BY_RANK[rank]))


def quantity(message: str) -> str:
    """What a violation is about: 'BN(x)' of 'BN(x)[0, 1]=2.0, but should be ...'."""
    return re.split(r"[\[=]", message, maxsplit=1)[0].strip()


def inherited(invariant, subject, case, violation: BaseException, reference) -> str:
    """'' when the violation is the subject's own; otherwise why it is torch's."""
    if subject.factory in (FunctionalBatchNorm, *_BY_RANK.values()):
        return ""
    problem = case.problem
    before = declared()
    declare(Conventions())  # torch under torch's conventions
    try:
        for torch_subject in torch_counterparts(len(problem.shape)):
            try:
                check_case(invariant, torch_subject, case, reference)
            except InvariantViolation as exc:
                if behaves_alike(violation, exc):
                    return _reason(invariant.id, torch_subject, problem)
            except Exception:  # noqa: BLE001  (torch refusing the case is not the same way)
                continue
    finally:
        declare(before)
    return ""


def behaves_alike(mine: BaseException, theirs: BaseException) -> bool:
    """Whether two violations of one case are the same failure: the same quantity, and
    ``mine``'s values within its tolerance of ``theirs`` wherever it compared values
    (``assert_close``'s ``compared``); else the same statement, context aside."""
    if quantity(str(mine)) != quantity(str(theirs)):
        return False
    a, b = getattr(mine, "compared", None), getattr(theirs, "compared", None)
    if a is None or b is None:
        return str(mine).split(" [")[0] == str(theirs).split(" [")[0]
    (_, got, _, tolerance), (_, their_got, _, _) = a, b
    if got.shape != their_got.shape:
        return False
    same = (got == their_got) | (got.isnan() & their_got.isnan())
    close = (got - their_got).abs() <= tolerance
    return bool((same | close).all())


def _reason(invariant_id, torch_subject, problem) -> str:
    known = [d for d in DEVIATIONS if d.invariant.id == invariant_id and d.device == problem.device
             and d.contains(problem)]
    named = (f"known deviation of {invariant_id} ({known[0].region_text or ', '.join(known[0].dtypes)})"
             if known else f"{invariant_id}, not recorded as a known deviation")
    return (f"inherited from torch: {torch_subject} fails the same counterexample the same way "
            f"({named})")
