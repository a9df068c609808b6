"""The Python API: check a batch norm from your own test file, outside the plugin.

    from bn_invariants import check_batch_norm

    def test_my_bn():
        check_batch_norm(FusedBN, devices=["cpu"])

``check_batch_norm`` searches every invariant with Hypothesis under the current
profile (or the one given), returns a ``Report`` and, when an invariant is broken,
raises one AssertionError that lists each violation with its reproduction.
"""
from __future__ import annotations

import inspect
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

VERDICTS = ("pass", "fail", "skip", "xfail")
"""'xfail': a violation that does not fail the run (in the baseline, or past ``level``)."""


@dataclass(frozen=True)
class InvariantResult:
    """The verdict of one invariant on one device."""

    invariant: str
    device: str
    verdict: str
    """'pass', 'fail' or 'skip'."""
    worst_ratio: float | None = None
    """A pass: the largest error-to-tolerance ratio seen in the search.  A failure: the
    ratio of its shrunk counterexample (above 1).  None when nothing was compared."""
    message: str = ""
    """The violation (fail) or the reason (skip)."""
    reproduction: str = ""
    """The shrunk counterexample, as ``Case(...)`` (fail only)."""
    seconds: float = 0.0
    finding: object = None
    """A violation's ``bn_invariants.defects.Finding`` (cause, level, dtype, status), else
    None."""


@dataclass
class Report:
    """Every invariant's verdict on one subject, with what identifies the run."""

    subject: str
    version: str
    registry: str
    torch: str
    profile: str
    results: list = field(default_factory=list)
    level: str = "range"
    """The least serious level that fails (``check_batch_norm``'s ``level``)."""
    baseline: object = None
    """What the baseline recorded (``bn_invariants.defects.Baseline``), or None."""
    coverage: list = field(default_factory=list)
    """One line per device: what the subject accepts, declines and the scope leaves out."""

    @property
    def failures(self) -> list:
        return [r for r in self.results if r.verdict == "fail"]

    @property
    def findings(self) -> list:
        """Every violation (failing, known or past the level) as a Finding."""
        return [r.finding for r in self.results if r.finding is not None]

    @property
    def defects(self) -> list:
        """The violations grouped by likely cause, most serious first."""
        from bn_invariants.defects import defects_of
        return defects_of(self.findings)

    @property
    def levels(self) -> dict:
        """{level: "holds" | "fails"}."""
        from bn_invariants.defects import levels_of
        return levels_of(self.defects)

    @property
    def ok(self) -> bool:
        """No invariant was violated (skips allowed)."""
        return not self.failures

    def counts(self) -> dict:
        return {v: sum(r.verdict == v for r in self.results) for v in VERDICTS}

    def table(self) -> str:
        """A plain-text table: invariant, device, verdict, worst ratio, reproduction."""
        rows = [("invariant", "device", "verdict", "worst ratio", "reproduction")]
        for r in self.results:
            ratio = "" if r.worst_ratio is None else f"{r.worst_ratio:.3g}"
            rows.append((r.invariant, r.device, r.verdict, ratio, r.reproduction))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4]
                 for row in rows]
        lines.insert(1, "-" * min(120, len(lines[0])))
        counts = self.counts()
        lines.append(f"{counts['pass']} passed, {counts['fail']} failed, "
                     f"{counts['skip']} skipped")
        return "\n".join(line.rstrip() for line in lines)

    def failure_text(self) -> str:
        """The failing invariants, then the defects (one block each, most serious first)
        and the levels that hold."""
        blocks = [f"{len(self.failures)} invariant(s) violated by {self.subject} "
                  f"(bn-invariants {self.version}, registry {self.registry}, "
                  f"torch {self.torch}, profile {self.profile}):"]
        for r in self.failures:
            cause = f"[{r.finding.cause}, {r.finding.level}] " if r.finding else ""
            blocks.append(f"- {r.invariant} on {r.device}: {cause}{r.message}")
            if r.reproduction:
                blocks.append(f"  reproduce: {r.reproduction}")
        return "\n".join(blocks + ["", *self.defect_lines()])

    def defect_lines(self) -> list:
        """The defects' blocks and the levels line (what the plugin's summary prints)."""
        from bn_invariants.defects import levels_line
        lines = [f"defects: {len(self.defects)}, most serious first"] if self.defects else []
        for i, defect in enumerate(self.defects, 1):
            lines += [f"{i}. {line}" if j == 0 else f"   {line}"
                      for j, line in enumerate(defect.block())]
        return lines + [f"levels: {levels_line(self.defects)}"]

    def fixed(self) -> list:
        """Baseline violations that hold now (their invariant and device were checked)."""
        from bn_invariants.defects import fixed_since
        checked = {(r.invariant, r.device) for r in self.results if r.verdict != "skip"}
        return fixed_since(self.baseline, self.findings, checked) if self.baseline else []

    def to_json(self) -> dict:
        """The report as a JSON-ready dict; its ``violated`` results make it a baseline."""
        results = []
        for r in self.results:
            entry = {k: v for k, v in r.__dict__.items() if k != "finding"}
            if r.finding is not None:
                entry.update(violated=True, **{k: getattr(r.finding, k) for k in
                                               ("cause", "level", "dtype", "status",
                                                "evidence", "replay")})
            results.append(entry)
        return {"subject": self.subject, "version": self.version, "registry": self.registry,
                "torch": self.torch, "profile": self.profile, "summary": self.counts(),
                "coverage": self.coverage, "level": self.level,
                "defects": [d.to_json() for d in self.defects], "levels": self.levels,
                "baseline": {"known": sum(r.verdict == "xfail" and r.finding.status == "known"
                                          for r in self.results if r.finding),
                             "fixed": [list(k) for k in self.fixed()]} if self.baseline else None,
                "results": results}

    def raise_for_failures(self) -> None:
        """Raise one AssertionError listing every violation, if there is one."""
        if self.failures:
            raise AssertionError(self.failure_text())


def check_batch_norm(impl, *, devices: Iterable[str] | None = None,
                     invariants: Iterable[str] | None = None, settings=None,
                     reference=None, replicas: int = 1,
                     progress: Callable[[int, int, InvariantResult], None] | None = None,
                     raise_on_failure: bool = True, strict: bool = False,
                     conventions=None, level: str = "range", dtypes=None,
                     baseline=None) -> Report:
    """Check ``impl`` against every invariant (or those named) on ``devices``.

    ``impl``: a class or factory with ``torch.nn.BatchNorm2d``'s constructor, or its
    ``"package.module:Name"`` spelling.  ``settings``: a Hypothesis ``settings`` object
    or a profile name ("dev", "ci", "thorough", ...); None uses the loaded profile, and outside
    pytest (Hypothesis's own "default") the suite's: dev, or ci when CI is set.
    ``reference``: a second implementation for the differential invariants (default:
    the float64 oracle).  ``progress(i, n, result)`` is called after each invariant.
    As with the plugin: a subject that does not normalise over the batch gets the one
    verdict ``batch-normalisation`` (its invariants skip); a broken construction or output
    contract is a failed result too; a violation torch's own batch norm shares (the subject's
    values within the tolerance of torch's, on the same case) is a skip whose message
    says so ("inherited from torch: ..."), unless ``strict`` (the plugin's
    ``--bn-strict``); options ``impl`` declines (its constructor or first forward raises
    NotImplementedError, TypeError or ValueError) are never drawn.
    Every violation carries its likely cause and level (``result.finding``; the
    report's ``defects`` and ``levels``).  ``level`` ("semantic", "precision" or "range",
    the default): the least serious level that fails; violations past it are "xfail"
    results.  ``dtypes`` (e.g. ``["float32", "float64"]`` or "float32,float64"): check only
    these.  ``baseline``: the path of an earlier report (``Report.to_json()``, the CLI's
    ``--json`` or the plugin's ``--bn-report``): the violations it records (same invariant,
    device and dtype) are "xfail" results, known; ``report.fixed()`` lists those that hold.
    ``conventions``: a ``Conventions`` (``bn_invariants.invariants.conventions``) for a
    design that differs from torch's on purpose, as the plugin's ``--bn-running-var``,
    ``--bn-momentum`` and ``--bn-frozen`` declare it (default: torch's).
    Raises AssertionError listing the failures and the defects unless
    ``raise_on_failure`` is False; raises ValueError for a bad argument and SubjectError
    for a subject that cannot be built or accepts no input.
    """
    from bn_invariants import __version__, registry_hash
    from bn_invariants.defects import Baseline, load_baseline
    from bn_invariants.invariants import REGISTRY, SubjectError
    from bn_invariants.invariants.causes import check_level
    from bn_invariants.invariants.conventions import Conventions, declare, declared
    from bn_invariants.invariants.runner import target_for
    from bn_invariants.invariants.subjects import REFERENCE_SUBJECT
    from bn_invariants.probing import parse_dtypes, probe_subject
    from bn_invariants.strategies import available_devices
    from bn_invariants.strategies.profiles import current_profile
    from bn_invariants.targets import CheckedTarget
    import torch

    subject = as_subject(impl, "impl")
    ref = as_subject(reference, "reference") if reference is not None else REFERENCE_SUBJECT
    chosen = _devices(devices, available_devices())
    selected = _invariants(invariants, REGISTRY)
    hyp_settings, profile = _settings(settings, current_profile)
    if replicas < 1:
        raise ValueError(f"replicas={replicas}, but should be at least 1")
    check_level(level)
    scope = parse_dtypes(dtypes, "dtypes")
    known = load_baseline(baseline) if baseline is not None else Baseline()
    probed = {device: probe_subject(subject, device, scope) for device in chosen}
    if not any(p.space for p in probed.values()):
        left = sorted({t for p in probed.values() for t in p.left_out})
        if left:
            raise SubjectError(f"{subject} accepts none of dtypes={','.join(scope)} on "
                               f"{', '.join(chosen)} (it accepts {', '.join(left)})")
        first = next(iter(probed.values())).space
        raise SubjectError(f"{subject} accepts no input: its forward pass raised for every "
                           f"rank 2-5 and dtype on {', '.join(chosen)} (first: {first.refusal})")
    report = Report(subject.name, __version__, registry_hash(), torch.__version__, profile,
                    level=level, baseline=known,
                    coverage=[f"{d} ({subject.name}): {p.coverage_line()}" for d, p in probed.items()])
    work = [(inv, device) for inv in selected for device in chosen]
    before = declared()
    declare(conventions or Conventions())  # what the invariants check, for this run only
    try:
        for device, p in probed.items():
            report.results += _contract_results(p, device, level, known)
        for i, (invariant, device) in enumerate(work, 1):
            p = probed[device]
            reason = _not_checked(invariant, subject, p, declared())
            if reason:
                result = InvariantResult(invariant.id, device, "skip", message=reason)
            else:
                target = CheckedTarget(target_for(invariant, subject, p.space, ref, replicas),
                                       p.capabilities)
                result = _run(target, device, hyp_settings, ref, strict,
                              Verdicts(p.diagnosis, level, known))
            report.results.append(result)
            if progress is not None:
                progress(i, len(work), result)
    finally:
        declare(before)
    if raise_on_failure:
        report.raise_for_failures()
    return report


@dataclass(frozen=True)
class Verdicts:
    """What turns a violation into a verdict: the up-front diagnosis (for its cause), the
    level that fails, the baseline's known violations."""

    diagnosis: object
    level: str
    baseline: object
    """A ``bn_invariants.defects.Baseline``."""


def _not_checked(invariant, subject, probed, conventions) -> str:
    """Why an invariant is not checked at all ('' when it is), as the plugin says it."""
    if not conventions.applies(invariant.id):
        return "does not apply to an eval-only batch norm (frozen)"
    diagnosis = probed.diagnosis
    if diagnosis is not None and diagnosis.verdict(conventions) and not diagnosis.frozen_like:
        return f"{subject} does not normalise over the batch (see batch-normalisation)"
    return ""


def _contract_results(probed, device: str, level: str, baseline) -> list:
    """The broken ones of the batch-normalisation verdict and the construction and output
    contracts, as the plugin's test_contract reports them (a kept contract is not listed)."""
    from bn_invariants.defects import contract_finding, settled
    from bn_invariants.invariants.conventions import declared
    results = []
    for name, message in probed.contracts(declared()).items():
        if message:
            finding = settled(contract_finding(name, device, message), level, baseline)
            results.append(InvariantResult(name, device, _verdict(finding), message=message,
                                           finding=finding))
    return results


def _verdict(finding) -> str:
    """'fail' for a finding that fails the run, 'xfail' for one known or past the level."""
    from bn_invariants.defects import FAILING
    return "fail" if finding.status == FAILING else "xfail"


def as_subject(impl, what: str):
    """A Subject from a class, a factory, a Subject or a 'package.module:Name' string."""
    from bn_invariants.invariants.subjects import Subject, load_subject
    if isinstance(impl, Subject):
        return impl
    if isinstance(impl, str):
        return load_subject(impl, what)
    if not callable(impl):
        raise ValueError(f"{what}={impl!r} is a {type(impl).__name__}, but should be a class "
                         f"or factory like torch.nn.BatchNorm2d, or 'package.module:Name'")
    module = getattr(impl, "__module__", None) or "?"
    name = getattr(impl, "__qualname__", None) or type(impl).__name__
    if inspect.isclass(impl) or inspect.isfunction(impl):
        return Subject(f"{module}:{name}", impl)
    return Subject(repr(impl), impl)


def _devices(devices, available) -> tuple:
    if devices is None:
        return tuple(available)
    chosen = tuple(devices)
    for device in chosen:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device {device!r}: should be 'cpu' or 'cuda'")
        if device not in available:
            raise ValueError(f"device {device!r}: no {device} device is available on this machine")
    if not chosen:
        raise ValueError("devices=[]: name at least one device")
    return chosen


def _invariants(names, registry) -> list:
    """The single-process invariants named (default: all of them); the distributed family
    needs a process group and runs under the plugin's ``--bn-dist-impl``."""
    single = {i.id: i for i in registry.values() if i.kind == "single"}
    if names is None:
        return list(single.values())
    names = list(names)
    for name in names:
        if name in registry and name not in single:
            raise ValueError(f"invariant {name!r} is a distributed one: it runs under "
                             f"`pytest --bn-dist-impl=package.module:Name`")
        if name not in single:
            raise ValueError(f"unknown invariant {name!r}: should be one of "
                             f"{', '.join(sorted(single))}")
    return [single[n] for n in names]


def _settings(settings, current_profile):
    from hypothesis import settings as hsettings

    from bn_invariants.strategies.profiles import default_profile
    if settings is None:
        name = current_profile()
        if name != "default":
            return None, name
        # Hypothesis's own default (outside pytest): 100 examples and a 200 ms deadline,
        # which a slow subject would fail on; the suite's dev (ci under CI) instead
        name = default_profile()
        return hsettings.get_profile(name), name
    if isinstance(settings, str):
        try:
            return hsettings.get_profile(settings), settings
        except Exception:
            raise ValueError(f"Hypothesis profile {settings!r} is not registered") from None
    if isinstance(settings, hsettings):
        return settings, "explicit settings"
    raise ValueError(f"settings={settings!r}: should be a hypothesis.settings or a profile name")


def _run(target, device: str, hyp_settings, reference, strict: bool,
         verdicts: Verdicts) -> InvariantResult:
    """Search one target; a shrunk failure becomes a 'fail' with its reproduction and its
    likely cause (a skip where torch's own kernel fails the same way, unless ``strict``;
    an 'xfail' where it is in the baseline or past the level)."""
    from bn_invariants.attribution import finding_of
    from bn_invariants.defects import Finding, settled
    from bn_invariants.invariants import InvariantViolation, Unsupported
    from bn_invariants.invariants.assertions import recording_ratios
    from bn_invariants.invariants.capabilities import declined_option
    from bn_invariants.invariants.inheritance import inherited
    from bn_invariants.invariants.runner import find_violation
    name = target.invariant.id
    if not target.space:
        return InvariantResult(name, device, "skip",
                               message=f"no input {target.subject} accepts on {device} that "
                                       f"{name} applies to")
    declined = target.declined_everywhere()  # a CheckedTarget wherever the space is not empty
    if declined:
        return InvariantResult(name, device, "skip", message=declined)
    start = time.perf_counter()
    with recording_ratios() as worst:
        error = find_violation(_Recording(target), hyp_settings)
    seconds = round(time.perf_counter() - start, 3)
    ratio = worst[0] or None
    if error is None and target.errors:  # the subject raised, the search went on: as the plugin
        from bn_invariants.outcomes import raised_finding
        finding = settled(raised_finding(target), verdicts.level, verdicts.baseline)
        return InvariantResult(name, device, _verdict(finding), None, finding.message,
                               finding.replay, seconds, finding)
    if error is None:
        return InvariantResult(name, device, "pass", ratio, seconds=seconds)
    if isinstance(error, Unsupported):
        return InvariantResult(name, device, "skip", ratio, f"{target.subject} declines: {error}",
                               seconds=seconds)
    error = _first_failure(error)
    declined = declined_option(error)
    if declined:  # the invariant builds the subject with an option it does not offer
        return InvariantResult(name, device, "skip", ratio,
                               f"{target.subject} declines what {name} needs: {declined}",
                               seconds=seconds)
    message = str(error).split("\n")[0] if isinstance(error, InvariantViolation) else (
        f"{type(error).__name__}: {error}".split("\n")[0])
    reproduction = repr(error.reproduction) if hasattr(error, "reproduction") else ""
    if reproduction and isinstance(error, InvariantViolation) and not strict:
        torch_too = inherited(target.invariant, target.subject, error.reproduction, error,
                              reference)
        if torch_too:
            return InvariantResult(name, device, "skip", message=torch_too,
                                   reproduction=reproduction, seconds=seconds)
    shrunk = _RATIO.search(message)
    # the shrunk counterexample's ratio, not the worst seen while searching; none where the
    # violation compares no value with a tolerance (a NaN, a dtype, an exception)
    ratio = float(shrunk.group(1)) if shrunk else None
    if isinstance(error, InvariantViolation):
        finding = finding_of(target, error, verdicts.diagnosis, reference)
    else:
        finding = Finding(name, device, None, "contract", "semantic",
                          "the subject raised on input it accepts elsewhere", message)
    finding = settled(finding, verdicts.level, verdicts.baseline)
    return InvariantResult(name, device, _verdict(finding), ratio, message, reproduction,
                           seconds, finding)


class _Recording:
    """A CheckedTarget whose check records the subject's own exceptions and goes on
    (``CheckedTarget.check_recording``), so the search reports violations first, as the
    plugin's invariant test does."""

    def __init__(self, target):
        self.target = target

    def __getattr__(self, name):
        return getattr(self.target, name)

    def check(self, case) -> None:
        self.target.check_recording(case)


_RATIO = re.compile(r"([0-9.]+(?:e[+-]?[0-9]+)?|inf)× the tolerance")


def _first_failure(error: BaseException) -> BaseException:
    """The first of Hypothesis's distinct failures (an ExceptionGroup), preferring one that
    carries its reproduction."""
    while isinstance(error, BaseExceptionGroup):
        parts = list(error.exceptions)
        error = next((e for e in parts if hasattr(e, "reproduction")), parts[0])
    return error
