"""Invariants every correct batch norm satisfies, as data and checks.  Knows nothing of pytest."""
from bn_invariants.invariants import catalogue  # noqa: F401  (registers every invariant)
from bn_invariants.invariants.assertions import InvariantViolation, Unsupported
from bn_invariants.invariants.registry import REGISTRY, Case, Invariant, Space, register
from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS, Subject, SubjectError, load_subject

__all__ = [
    "BUILTIN_SUBJECTS", "REGISTRY", "Case", "Invariant", "InvariantViolation", "Space",
    "Subject", "SubjectError", "Unsupported", "load_subject", "register",
]
