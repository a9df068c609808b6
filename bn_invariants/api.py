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

VERDICTS = ("pass", "fail", "skip")


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


@dataclass
class Report:
    """Every invariant's verdict on one subject, with what identifies the run."""

    subject: str
    version: str
    registry: str
    torch: str
    profile: str
    results: list = field(default_factory=list)

    @property
    def failures(self) -> list:
        return [r for r in self.results if r.verdict == "fail"]

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
        """One block per violated invariant: the message and the reproduction."""
        blocks = [f"{len(self.failures)} invariant(s) violated by {self.subject} "
                  f"(bn-invariants {self.version}, registry {self.registry}, "
                  f"torch {self.torch}, profile {self.profile}):"]
        for r in self.failures:
            blocks.append(f"- {r.invariant} on {r.device}: {r.message}\n"
                          f"  reproduce: {r.reproduction}")
        return "\n".join(blocks)

    def to_json(self) -> dict:
        """The report as a JSON-ready dict."""
        return {"subject": self.subject, "version": self.version, "registry": self.registry,
                "torch": self.torch, "profile": self.profile, "summary": self.counts(),
                "results": [r.__dict__ for r in self.results]}

    def raise_for_failures(self) -> None:
        """Raise one AssertionError listing every violation, if there is one."""
        if self.failures:
            raise AssertionError(self.failure_text())


def check_batch_norm(impl, *, devices: Iterable[str] | None = None,
                     invariants: Iterable[str] | None = None, settings=None,
                     reference=None, replicas: int = 1,
                     progress: Callable[[int, int, InvariantResult], None] | None = None,
                     raise_on_failure: bool = True, strict: bool = False,
                     conventions=None) -> Report:
    """Check ``impl`` against every invariant (or those named) on ``devices``.

    ``impl``: a class or factory with ``torch.nn.BatchNorm2d``'s constructor, or its
    ``"package.module:Name"`` spelling.  ``settings``: a Hypothesis ``settings`` object
    or a profile name ("dev", "ci", "thorough", ...); None uses the loaded profile, and outside
    pytest (Hypothesis's own "default") the suite's: dev, or ci when CI is set.
    ``reference``: a second implementation for the differential invariants (default:
    the float64 oracle).  ``progress(i, n, result)`` is called after each invariant.
    A violation torch's own batch norm shares on the same case (``impl`` wraps torch's
    kernel) is a skip whose message says so ("inherited from torch: ..."), as with the
    plugin, unless ``strict`` (the plugin's ``--bn-strict``).  Options ``impl`` declines
    (its constructor or first forward raises NotImplementedError, TypeError or ValueError)
    are never drawn.
    ``conventions``: a ``Conventions`` (``bn_invariants.invariants.conventions``) for a
    design that differs from torch's on purpose, as the plugin's ``--bn-running-var``,
    ``--bn-momentum`` and ``--bn-frozen`` declare it (default: torch's).
    Raises AssertionError listing the violations unless ``raise_on_failure`` is False;
    raises ValueError for a bad argument and SubjectError for a subject that cannot be
    built or accepts no input.
    """
    from bn_invariants import __version__, registry_hash
    from bn_invariants.invariants import REGISTRY, SubjectError
    from bn_invariants.invariants.capabilities import probe_capabilities
    from bn_invariants.invariants.conventions import Conventions, declare, declared
    from bn_invariants.invariants.coverage import probe
    from bn_invariants.invariants.runner import target_for
    from bn_invariants.targets import CheckedTarget
    from bn_invariants.invariants.subjects import REFERENCE_SUBJECT
    from bn_invariants.strategies import available_devices
    from bn_invariants.strategies.profiles import current_profile
    import torch

    subject = as_subject(impl, "impl")
    ref = as_subject(reference, "reference") if reference is not None else REFERENCE_SUBJECT
    chosen = _devices(devices, available_devices())
    selected = _invariants(invariants, REGISTRY)
    hyp_settings, profile = _settings(settings, current_profile)
    if replicas < 1:
        raise ValueError(f"replicas={replicas}, but should be at least 1")
    spaces = {device: probe(subject, device) for device in chosen}
    if not any(spaces.values()):
        first = next(iter(spaces.values()))
        raise SubjectError(f"{subject} accepts no input: its forward pass raised for every "
                           f"rank 2-5 and dtype on {', '.join(chosen)} (first: {first.refusal})")
    # the options each device's subject declines (NotImplementedError, TypeError or
    # ValueError from its constructor or first forward): no case needing them is drawn
    offered = {device: probe_capabilities(subject, device, space)
               for device, space in spaces.items() if space}
    report = Report(subject.name, __version__, registry_hash(), torch.__version__, profile)
    work = [(inv, device) for inv in selected for device in chosen]
    before = declared()
    declare(conventions or Conventions())  # what the invariants check, for this run only
    try:
        for i, (invariant, device) in enumerate(work, 1):
            target = target_for(invariant, subject, spaces[device], ref, replicas)
            if device in offered:
                target = CheckedTarget(target, offered[device])
            result = (_run(target, device, hyp_settings, ref, strict)
                      if declared().applies(invariant.id) else InvariantResult(
                          invariant.id, device, "skip",
                          message="does not apply to an eval-only batch norm (frozen)"))
            report.results.append(result)
            if progress is not None:
                progress(i, len(work), result)
    finally:
        declare(before)
    if raise_on_failure:
        report.raise_for_failures()
    return report


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


def _run(target, device: str, hyp_settings, reference, strict: bool) -> InvariantResult:
    """Search one target; a shrunk failure becomes a 'fail' with its reproduction (a skip
    where torch's own kernel fails the same way, unless ``strict``)."""
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
        error = find_violation(target, hyp_settings)
    seconds = round(time.perf_counter() - start, 3)
    ratio = worst[0] or None
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
    if shrunk:  # the shrunk counterexample's ratio, not the worst seen while searching
        ratio = float(shrunk.group(1))
    return InvariantResult(name, device, "fail", ratio, message, reproduction, seconds)


_RATIO = re.compile(r"([0-9.]+(?:e[+-]?[0-9]+)?|inf)× the tolerance")


def _first_failure(error: BaseException) -> BaseException:
    """The first of Hypothesis's distinct failures (an ExceptionGroup), preferring one that
    carries its reproduction."""
    while isinstance(error, BaseExceptionGroup):
        parts = list(error.exceptions)
        error = next((e for e in parts if hasattr(e, "reproduction")), parts[0])
    return error
