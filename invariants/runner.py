"""Run one invariant against one subject on one device, outside pytest too."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from hypothesis import given, note, settings as hsettings

from invariants.deviations import excluding_deviations
from invariants.registry import Invariant, Space
from invariants.subjects import REFERENCE_SUBJECT, Subject


@dataclass(frozen=True)
class Target:
    """An invariant, a subject and the part of its space the invariant applies to."""

    invariant: Invariant
    subject: Subject
    space: Space
    reference: Subject = REFERENCE_SUBJECT

    @property
    def id(self) -> str:
        return f"{self.invariant.id}-{self.subject.name}-{self.space.device}"

    @cached_property
    def strategy(self):
        """The strategy of Cases this target draws."""
        return self.invariant.cases(self.space)

    def cases(self):
        """The strategy of Cases this target draws (built once)."""
        return self.strategy

    def check(self, case) -> None:
        """Raise InvariantViolation when the subject breaks the invariant on ``case``."""
        note(f"reproduce: {case!r}")
        check_case(self.invariant, self.subject, case, self.reference)


def check_case(invariant: Invariant, subject: Subject, case,
               reference: Subject = REFERENCE_SUBJECT) -> None:
    """Check one case outside Hypothesis (a replayed counterexample, say)."""
    if invariant.needs_reference:
        invariant.check(subject, case, reference)
    else:
        invariant.check(subject, case)


def target_for(invariant: Invariant, subject: Subject, space: Space,
               reference: Subject = REFERENCE_SUBJECT) -> Target:
    """The Target of ``invariant`` on the part of ``space`` it applies to, less the
    dtypes a known deviation of this subject covers (replayed as strict xfails)."""
    applicable = excluding_deviations(invariant.id, subject, invariant.space_for(space))
    return Target(invariant, subject, applicable, reference)


def find_violation(target: Target, settings: hsettings | None = None):
    """Search for a counterexample; return the (shrunk) exception, or None."""
    @given(case=target.cases())
    def search(case):
        target.check(case)

    if settings is not None:
        search = settings(search)
    try:
        search()
    except Exception as exc:  # the shrunk failure, re-raised by Hypothesis
        return exc
    return None
