"""Invariants every correct batch norm satisfies, as data and checks.  Knows nothing of pytest."""
from bn_invariants.invariants import catalogue  # noqa: F401  (registers every invariant)
from bn_invariants.invariants.assertions import InvariantViolation, Unsupported
from bn_invariants.invariants.params import (BiasOffset, Batches, Extreme, Params, PositiveScale,
                                             PowerOfTwo, RedrawnChannel, Repeats, Sample, Scale,
                                             Shift, Steps)
from bn_invariants.invariants.cases import Case, DistCase, Space
from bn_invariants.invariants.registry import REGISTRY, Invariant, register
from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS, Subject, SubjectError, load_subject

__all__ = [
    "BUILTIN_SUBJECTS", "REGISTRY", "Case", "DistCase", "Invariant", "InvariantViolation", "Space",
    "Subject", "SubjectError", "Unsupported", "load_subject", "register",
    # the kinds of params a case carries (invariants/params.py), so a printed case pastes back
    "Batches", "BiasOffset", "Extreme", "Params", "PositiveScale", "PowerOfTwo",
    "RedrawnChannel", "Repeats", "Sample", "Scale", "Shift", "Steps",
]
