"""What the plugin does for the distributed family: load the distributed subjects,
probe what each takes (ranks, dtypes, options), parametrise
bn_invariants/distributed_tests.py, and print each failure with its replay.

Distributed invariants (``Invariant.kind == "distributed"``) are checked there,
against distributed subjects; ``session.parametrize`` keeps to the single-process ones.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from bn_invariants.invariants import REGISTRY, InvariantViolation, SubjectError
from bn_invariants.invariants.distributed.pool import DEFAULT_TIMEOUT_S, stop_pools
from bn_invariants.invariants.distributed.probe import probe
from bn_invariants.invariants.distributed.run import TIMEOUT
from bn_invariants.invariants.distributed.subjects import (BUILTIN_DIST_SUBJECTS, dist_subject,
                                                           unavailable)
from bn_invariants.invariants.runner import target_for
from bn_invariants.outcomes import leaves
from bn_invariants.replay import compact
from bn_invariants.options import setting
from bn_invariants.report import REPORT, register_report
from bn_invariants.strategies.profiles import default_profile
from bn_invariants.targets import CheckedTarget

DIST_SUBJECTS = pytest.StashKey[tuple]()
DIST_PROBED = pytest.StashKey[dict]()
EXAMPLE_SHARE = 4
"""The distributed family runs 1/EXAMPLE_SHARE of the profile's examples (at least 3):
an example costs W processes and a few collectives."""


def distributed_examples() -> int:
    """max_examples of the distributed tests under the current profile (ci: 7)."""
    return max(3, settings.default.max_examples // EXAMPLE_SHARE)


def _timeout(config) -> float:
    raw = setting(config, "--bn-dist-timeout") or DEFAULT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise pytest.UsageError(f"--bn-dist-timeout={raw}: should be a positive number of seconds")
    return seconds


def configure(config) -> None:
    """Choose the distributed subjects, --bn-dist-impl (loaded and probed on 2 ranks,
    one-line UsageError when it cannot be used) or the built-in ones, and probe what
    each available one takes."""
    if not config.getoption("hypothesis_profile", default=None):
        settings.load_profile(default_profile())  # as session.configure does
    TIMEOUT["seconds"] = _timeout(config)
    report_path = setting(config, "--bn-report")
    if report_path and REPORT not in config.stash:  # not yet registered by session.configure
        register_report(config, report_path)
    config.pluginmanager.register(Replays(), "bn-dist-replays")
    spec = setting(config, "--bn-dist-impl")
    if spec:
        device = setting(config, "--bn-dist-device") or "cpu"
        if device not in ("cpu", "cuda"):
            raise pytest.UsageError(f"--bn-dist-device={device}: should be cpu or cuda")
        try:
            subjects = (dist_subject(spec, device),)
            reason = unavailable(subjects[0])
            if reason:
                raise SubjectError(reason)
        except SubjectError as exc:
            raise pytest.UsageError(f"--bn-dist-impl: {exc}") from None
    else:
        subjects = BUILTIN_DIST_SUBJECTS
    try:
        probed = {s.name: probe(s) for s in subjects if not unavailable(s)}
    except SubjectError as exc:
        raise pytest.UsageError(f"--bn-dist-impl: {exc}") from None
    config.stash[DIST_PROBED] = _scoped(config, probed)
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        stop_pools()  # the xdist controller runs no test
    config.stash[DIST_SUBJECTS] = subjects


def _scoped(config, probed: dict) -> dict:
    """The probed spaces less the dtypes --bn-dtypes leaves out (a usage error where none
    is left)."""
    from dataclasses import replace
    from bn_invariants.probing import parse_dtypes
    try:
        scope = parse_dtypes(setting(config, "--bn-dtypes"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if scope is None:
        return probed
    scoped = {name: replace(p, space=p.space.restrict(scope)) for name, p in probed.items()}
    for name, p in scoped.items():
        if not p.space:
            raise pytest.UsageError(f"--bn-dtypes={','.join(scope)}: the distributed subject "
                                    f"{name} takes none of them ({probed[name].coverage_line()})")
    return scoped


def report_header(config) -> str:
    """The header's lines: the distributed subjects, the timeout, the example count, and
    what each subject takes, found by probing."""
    names = ", ".join(str(s) for s in config.stash[DIST_SUBJECTS])
    lines = [f"distributed subjects: {names}; last-resort timeout {TIMEOUT['seconds']:g} s "
             f"without progress; {distributed_examples()} examples per distributed test",
             "distributed coverage (what each subject takes on 2 ranks, found by probing):"]
    lines += [f"  {name}: {probed.coverage_line()}"
              for name, probed in config.stash[DIST_PROBED].items()]
    return "\n".join(lines)


def parametrize(metafunc) -> None:
    """One test per distributed invariant x distributed subject."""
    params = []
    for invariant in REGISTRY.values():
        if invariant.kind != "distributed":
            continue
        for subject in metafunc.config.stash[DIST_SUBJECTS]:
            ident = f"{invariant.id}-{subject.name}-{subject.device}"
            reason = unavailable(subject)
            if reason:
                params.append(pytest.param(None, id=ident, marks=pytest.mark.skip(reason=reason)))
                continue
            probed = metafunc.config.stash[DIST_PROBED][subject.name]
            target = target_for(invariant, subject, probed.space)
            params.append(pytest.param(CheckedTarget(target, probed.capabilities), id=ident))
    metafunc.parametrize("dist_target", params)


class Replays:
    """Hooks that print a failed distributed test as the single-process ones are printed:
    the invariant, the subject, each failure in one line, and the Python that replays
    its case outside Hypothesis."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        target = getattr(getattr(item, "callspec", None), "params", {}).get("dist_target")
        if call.when != "call" or not report.failed or call.excinfo is None or target is None:
            return
        found = [e for e in leaves(call.excinfo.value) if hasattr(e, "reproduction")]
        if found:
            report.longrepr = "\n\n".join(replay_block(target, e) for e in found)
            report.bn_reason = report.longrepr  # the JSON report's reason, as for the others


def replay_block(target, failure) -> str:
    """The invariant, the subject, the failure in one line, and its replay."""
    what = str(failure) if isinstance(failure, InvariantViolation) else \
        f"{type(failure).__name__}: {failure}"
    spec, device = target.subject.name, target.subject.device
    return "\n".join([
        f"{target.invariant.id} ({target.invariant.title}) fails for {target.subject}:",
        f"  {what}",
        "Replay the check of this case (from the directory pytest ran in):",
        "  from bn_invariants.invariants import *; from bn_invariants.strategies import *",
        "  from bn_invariants.invariants.runner import check_case",
        "  from bn_invariants.invariants.distributed.subjects import dist_subject",
        f"  check_case(REGISTRY[{target.invariant.id!r}], dist_subject({spec!r}, {device!r}), "
        f"{compact(failure.reproduction)})"])
