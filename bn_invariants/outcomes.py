"""What each invariant test's outcome means, decided once the test has run: a failure
torch shares is inherited (a non-strict xfail unless ``--bn-strict``), exceptions the
subject raised are one line each, a failure's report is one short block with its
reproduction; and the end-of-run summary that counts and groups them."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from bn_invariants.invariants import InvariantViolation
from bn_invariants.invariants.blame import raised_by_suite
from bn_invariants.invariants.inheritance import inherited
from bn_invariants.invariants.reproduction import reproduce

INHERITED = "inherited from torch"


def leaves(exc: BaseException) -> list:
    """The exceptions inside ``exc`` (an ExceptionGroup when Hypothesis found several)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaves(sub)]
    return [exc]


class Outcomes:
    """Hooks that turn raw results into verdicts, and the counts for the summary."""

    def __init__(self, config, reference, strict: bool):
        self.config, self.reference, self.strict = config, reference, strict
        self.inherited, self.failed, self.skips = 0, 0, {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        target = getattr(getattr(item, "callspec", None), "params", {}).get("target")
        if call.when != "call" or target is None or not hasattr(target, "errors"):
            return
        if report.passed and target.errors:
            _fail(report, subject_errors(target))
        elif report.failed and call.excinfo is not None:
            self._judge(report, target, call.excinfo.value)

    def _judge(self, report, target, exc) -> None:
        found = leaves(exc)
        if all(isinstance(e, (Unsatisfiable, FailedHealthCheck)) for e in found):
            reason = target.declined_everywhere()
            if reason:
                _skip(report, reason)
            return
        violations = [e for e in found if isinstance(e, InvariantViolation)]
        if len(violations) != len(found):
            if any(raised_by_suite(e) for e in found if e not in violations):
                report.sections.append(("bn-invariants", _SUITE_BUG))
            return
        reasons = [inherited(target.invariant, target.subject, v.reproduction, v, self.reference)
                   if hasattr(v, "reproduction") else "" for v in violations]
        block = "\n\n".join(short_block(target, v, self._script(target, v)) for v in violations)
        if all(reasons):
            text = f"{reasons[0]}\n{block}"
            if self.strict:
                _fail(report, f"{text}\n(--bn-strict: inherited deviations fail)")
            else:
                report.outcome, report.wasxfail = "skipped", f"{INHERITED}: {reasons[0]}"
                report.longrepr = None
            return
        _fail(report, block)

    def _script(self, target, violation) -> str:
        """The violation's stand-alone reproduction ('' when there is none)."""
        case = getattr(violation, "reproduction", None)
        if case is None:
            return ""
        return reproduce(target.invariant, target.subject, case, str(violation), self.reference)

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and getattr(report, "wasxfail", "").startswith(INHERITED):
            self.inherited += 1
        elif report.failed:
            self.failed += 1
        elif report.skipped and not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            self.skips[reason] = self.skips.get(reason, 0) + 1


_SUITE_BUG = ("This exception was raised by bn-invariants' own code, not by the subject: "
              "it is a bug in the suite. Please report it with this traceback.")


def subject_errors(target) -> str:
    """One line per distinct exception the subject raised, with how often and where first."""
    seen = {}
    for what, where in target.errors:
        seen.setdefault(what, [0, where])[0] += 1
    return "\n".join(f"{target.invariant.id}: {target.subject} raised {what} "
                     f"({count} example{'s' if count > 1 else ''}; first on {where}); "
                     f"the other examples were checked"
                     for what, (count, where) in seen.items())


def short_block(target, violation, script: str = "") -> str:
    """invariant, subject, the violation (got, expected, tolerance, ratio, context), and
    the reproduction when there is one."""
    lines = [f"{target.invariant.id} ({target.invariant.title}) fails for {target.subject}:",
             f"  {violation}"]
    if script:
        lines += ["Reproduce it on its own:", script]
    elif getattr(violation, "reproduction", None) is not None:
        lines += ["Replay the check of this case:",
                  "  from bn_invariants.invariants import *; from bn_invariants.strategies import *",
                  "  from bn_invariants.invariants.runner import check_case",
                  f"  check_case(REGISTRY[{target.invariant.id!r}], "
                  f"load_subject({target.subject.spec!r}), {compact(violation.reproduction)})"]
    return "\n".join(lines)


def compact(value) -> str:
    """``repr`` of a dataclass with only the fields that differ from their defaults
    (recursively), so a Case reads Case(problem=Problem(shape=(2, 1)), params=Steps(steps=2,
    lr=1.0))."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return repr(dict(value)) if isinstance(value, Mapping) else repr(value)
    parts = []
    for f in dataclasses.fields(value):
        got = getattr(value, f.name)
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else dataclasses.MISSING)
        if default is dataclasses.MISSING or got != default:
            parts.append(f"{f.name}={compact(got)}")
    return f"{type(value).__name__}({', '.join(parts)})"


def _fail(report, text: str) -> None:
    report.outcome = "failed"
    report.longrepr = text
    report.bn_reason = text


def _skip(report, reason: str) -> None:
    report.outcome = "skipped"
    report.longrepr = (str(report.fspath), report.location[1] or 0, f"Skipped: {reason}")
