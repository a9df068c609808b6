"""The invariant tests' parameter: a Target, less the options its subject declines, that
keeps the exceptions the subject raised along the way and prints as its test id."""
from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, find, settings
from hypothesis.errors import NoSuchExample, Unsatisfiable, UnsatisfiedAssumption

from bn_invariants.invariants.assertions import (InvariantViolation, Unsupported,
                                                 is_device_fault)
from bn_invariants.invariants.blame import describe, raised_by_suite
from bn_invariants.invariants.capabilities import declined_option
from bn_invariants.invariants.runner import Target


@dataclass(frozen=True, eq=False)
class CheckedTarget:
    """``target`` (runner.Target) drawn only where ``capabilities`` accepts its options."""

    target: object
    capabilities: object
    errors: list = field(default_factory=list)
    """(description, problem summary, case) of each exception the subject raised inside
    the invariant; the search goes on, and the test reports them in one line each."""

    def __getattr__(self, name):
        return getattr(self.target, name)

    @property
    def id(self) -> str:
        """'<invariant>-<subject>-<device>', safe for ``-k``."""
        return safe_id(self.target.invariant.id, self.target.subject.name,
                       self.target.space.device)

    def cases(self):
        """The target's cases, less those needing a declined option."""
        strategy = self.target.cases()
        if not self.capabilities.declined:
            return strategy
        return strategy.filter(lambda case: self.capabilities.accepts(case.problem.options))

    def long_cases(self) -> tuple:
        """The target's long cases (runner.Target.long_cases), each found among the cases
        this target draws, so none needs a declined option."""
        return Target.long_cases(self)

    def check(self, case) -> None:
        """The target's check (see runner.Target.check)."""
        self.target.check(case)

    def record(self, exc: BaseException, case) -> None:
        """Keep an exception the subject raised on ``case``."""
        self.errors.append((describe(exc), case.problem.summary(), case))

    def check_recording(self, case) -> None:
        """``check``, but an exception of the subject's own (not a violation, a decline,
        a device fault or the suite's bug) is recorded and the search goes on, as the
        plugin's invariant test does."""
        try:
            self.target.check(case)
        except (InvariantViolation, Unsupported, UnsatisfiedAssumption):
            raise
        except Exception as exc:
            if raised_by_suite(exc) or is_device_fault(exc) or declined_option(exc):
                raise
            self.record(exc, case)

    def declined_everywhere(self) -> str:
        """Why no case can be drawn ('' when some can): every case needs a declined option."""
        if not self.capabilities.declined or not self.target.space:
            return ""
        quick = settings(max_examples=60, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))
        try:
            find(self.target.cases(), lambda c: self.capabilities.accepts(c.problem.options),
                 settings=quick)
        except (NoSuchExample, Unsatisfiable):
            needs = find(self.target.cases(), lambda c: True, settings=quick).problem.options
            return (f"{self.target.subject} declines what every case of "
                    f"{self.target.invariant.id} needs: "
                    f"{'; '.join(self.capabilities.declined_by(needs))}")
        return ""

    def __repr__(self) -> str:
        return self.id


def safe_id(*parts) -> str:
    """A test id from its parts, without the characters ``-k`` cannot take: 'reference(float64)'
    becomes 'reference-float64'."""
    text = "-".join(str(p) for p in parts)
    for char in "()[] ":
        text = text.replace(char, "-")
    while "--" in text:
        text = text.replace("--", "-")
    return text.strip("-")
