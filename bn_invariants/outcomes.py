"""What each invariant test's outcome means, decided once the test has run: a failure
torch shares is inherited (a non-strict xfail unless ``--bn-strict``), exceptions the
subject raised are one line each, a failure is a Finding with its likely cause and level
(``bn_invariants.attribution``) and a report of one line (the whole block with ``-v``);
a finding in the baseline or past ``--bn-level`` is an xfail, reported, not failing.
The controller collects the findings for the summary's defects."""
from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from bn_invariants.defects import (FAILING, KNOWN, Baseline, Finding, contract_finding,
                                   settled)
from bn_invariants.options import PROBED
from bn_invariants.replay import compact, replay_line
from bn_invariants.invariants import InvariantViolation
from bn_invariants.invariants.blame import raised_by_suite
from bn_invariants.invariants.inheritance import inherited
from bn_invariants.invariants.reproduction import reproduce, reproduction_file

INHERITED = "inherited from torch"
KNOWN_PREFIX = "known (in the baseline)"
BEYOND_PREFIX = "beyond --bn-level"


def leaves(exc: BaseException) -> list:
    """The exceptions inside ``exc`` (an ExceptionGroup when Hypothesis found several)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaves(sub)]
    return [exc]


class Outcomes:
    """Hooks that turn raw results into verdicts, and the counts for the summary."""

    def __init__(self, config, reference, strict: bool, *, level: str = "range",
                 baseline: Baseline = Baseline(), baseline_path=None):
        self.config, self.reference, self.strict = config, reference, strict
        self.level, self.baseline, self.baseline_path = level, baseline, baseline_path
        self.inherited, self.failed, self.skips = 0, 0, {}
        self.known, self.beyond = 0, 0
        self.findings: list = []
        self.checked: set = set()
        """(invariant, device) of every invariant test that ran."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        params = getattr(getattr(item, "callspec", None), "params", {})
        if call.when != "call":
            return
        if "contract" in params:
            self._judge_contract(report, params["contract"])
            return
        target = params.get("target")
        if target is None or not hasattr(target, "errors"):
            return
        report.bn_checked = [target.invariant.id, target.space.device]
        if report.passed and target.errors:
            finding = raised_finding(target)
            self._settle(report, finding, f"{target.invariant.id} fails for {target.subject} "
                                          f"[contract, semantic]: {finding.message}")
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
        verbose = self.config.get_verbosity() > 0
        if all(reasons) and not self.strict:
            report.outcome, report.wasxfail = "skipped", reasons[0]
            report.longrepr = None
            return
        violation = next((v for v in violations if hasattr(v, "reproduction")), violations[0])
        finding, script = self._finding(target, violation)
        if all(reasons):  # --bn-strict: torch's deviation, failing all the same
            finding = dataclasses.replace(finding, evidence=f"{reasons[0]} (--bn-strict: "
                                                             f"inherited deviations fail)")
        if verbose:
            text = "\n\n".join(short_block(target, v, script if v is violation
                                             else self._script(target, v)) for v in violations)
            text = f"{text}\n{_cause_line(finding)}"
        else:
            text = brief(target, violation, finding)
        self._settle(report, finding, text)

    def _finding(self, target, violation) -> tuple:
        """(the violation as a Finding with its likely cause, the text of its stand-alone
        reproduction, '' where there is none); the script is written to
        bn-invariants-repro/ once, and the Finding names it."""
        from bn_invariants.attribution import finding_of
        probed = self.config.stash[PROBED].get((target.subject.name, target.space.device))
        found = finding_of(target, violation, getattr(probed, "diagnosis", None), self.reference)
        case = getattr(violation, "reproduction", None)
        if case is None:
            return found, ""
        path, line = reproduction_file(target.invariant, target.subject, case, str(violation),
                                       self.reference)
        script = path.read_text(encoding="utf-8") if path is not None else line
        return dataclasses.replace(found, script=line), script

    def _judge_contract(self, report, contract) -> None:
        name, subject, device, message = contract
        report.bn_checked = [name, device]
        if not report.failed:
            return
        finding = contract_finding(name, device, message)
        self._settle(report, finding, f"{name} fails for {subject} [{finding.cause}, "
                                      f"semantic]: {message}")

    def _settle(self, report, finding: Finding, text: str) -> None:
        """Fail ``report`` with ``text``, or make it an xfail when the finding is known in
        the baseline or past --bn-level; keep the finding on the report either way."""
        finding = settled(finding, self.level, self.baseline)
        report.bn_finding = finding.to_json()
        if finding.status == FAILING:
            _fail(report, text)
            return
        prefix = KNOWN_PREFIX if finding.status == KNOWN else f"{BEYOND_PREFIX}={self.level}"
        report.outcome, report.longrepr = "skipped", None
        report.wasxfail = (f"{prefix}: {finding.cause} ({finding.level}): "
                           f"{finding.invariant}: {finding.message[:200]}")

    def _script(self, target, violation) -> str:
        """The violation's stand-alone reproduction ('' when there is none)."""
        case = getattr(violation, "reproduction", None)
        if case is None:
            return ""
        return reproduce(target.invariant, target.subject, case, str(violation), self.reference)

    def pytest_runtest_logreport(self, report):
        finding = getattr(report, "bn_finding", None)
        if finding is not None:
            self.findings.append(Finding(**finding))
        checked = getattr(report, "bn_checked", None)
        if checked is not None:
            self.checked.add(tuple(checked))
        wasxfail = getattr(report, "wasxfail", "")
        if report.when == "call" and wasxfail.startswith(INHERITED):
            self.inherited += 1
        elif report.when == "call" and wasxfail.startswith(KNOWN_PREFIX):
            self.known += 1
        elif report.when == "call" and wasxfail.startswith(BEYOND_PREFIX):
            self.beyond += 1
        elif report.failed and checked is not None:
            self.failed += 1
        elif report.skipped and not hasattr(report, "wasxfail") and _is_invariant_test(report):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            self.skips[reason] = self.skips.get(reason, 0) + 1


def _is_invariant_test(report) -> bool:
    """Whether ``report`` is of a test the plugin added (its skips are counted)."""
    return "bn_invariants" in report.keywords if hasattr(report, "keywords") else False


def _cause_line(finding: Finding) -> str:
    return f"cause: {finding.cause} ({finding.level}): {finding.evidence}"


def brief(target, violation, finding: Finding) -> str:
    """One line: the invariant, the likely cause and level, the violation (the defects at
    the end of the run say more; ``-v`` gives the whole block and the stand-alone script)."""
    return (f"{target.invariant.id} fails for {target.subject} [{finding.cause}, "
            f"{finding.level}]: {str(violation).splitlines()[0]}")


_SUITE_BUG = ("This exception was raised by bn-invariants' own code, not by the subject: "
              "it is a bug in the suite. Please report it with this traceback.")


def subject_errors(target) -> str:
    """One sentence per distinct exception the subject raised, with how often and where
    first, joined on one line."""
    seen = {}
    for what, where, _ in target.errors:
        seen.setdefault(what, [0, where])[0] += 1
    return "; ".join(f"{target.subject} raised {what} ({count} example"
                     f"{'s' if count > 1 else ''}; first on {where})"
                     for what, (count, where) in seen.items()) + "; the other examples were checked"


def raised_finding(target) -> Finding:
    """The exceptions the subject raised inside ``target``'s invariant as one Finding
    (cause ``contract``), replayed on the first case that raised."""
    case = target.errors[0][2]
    return Finding(target.invariant.id, target.space.device, case.problem.dtype, "contract",
                   "semantic", "the subject raised on input it accepts elsewhere",
                   subject_errors(target), math.prod(case.problem.shape),
                   replay_line(target, case))


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


def _fail(report, text: str) -> None:
    report.outcome = "failed"
    report.longrepr = text
    report.bn_reason = text


def _skip(report, reason: str) -> None:
    report.outcome = "skipped"
    report.longrepr = (str(report.fspath), report.location[1] or 0, f"Skipped: {reason}")
