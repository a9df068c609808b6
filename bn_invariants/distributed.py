"""What the plugin does for the distributed family: load the distributed subjects,
probe a --bn-dist-impl, and parametrise bn_invariants/distributed_tests.py.

Distributed invariants (``Invariant.kind == "distributed"``) are checked there,
against distributed subjects; ``session.parametrize`` keeps to the single-process ones.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from bn_invariants.invariants import REGISTRY, SubjectError
from bn_invariants.invariants.distributed.pool import DEFAULT_TIMEOUT_S, shared_pool
from bn_invariants.invariants.distributed.probe import probe
from bn_invariants.invariants.distributed.run import TIMEOUT
from bn_invariants.invariants.distributed.subjects import (BUILTIN_DIST_SUBJECTS, dist_subject,
                                                           unavailable)
from bn_invariants.invariants.runner import target_for
from bn_invariants.plugin import setting
from bn_invariants.report import REPORT, register_report

DIST_SUBJECTS = pytest.StashKey[tuple]()
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
    """Choose the distributed subjects: --bn-dist-impl (loaded and probed on 2 ranks,
    one-line UsageError when it cannot be used) or the built-in ones."""
    TIMEOUT["seconds"] = _timeout(config)
    report_path = setting(config, "--bn-report")
    if report_path and REPORT not in config.stash:  # not yet registered by session.configure
        register_report(config, report_path)
    spec = setting(config, "--bn-dist-impl")
    if not spec:
        config.stash[DIST_SUBJECTS] = BUILTIN_DIST_SUBJECTS
        return
    device = setting(config, "--bn-dist-device") or "cpu"
    if device not in ("cpu", "cuda"):
        raise pytest.UsageError(f"--bn-dist-device={device}: should be cpu or cuda")
    try:
        subject = dist_subject(spec, device)
        reason = unavailable(subject)
        if reason:
            raise SubjectError(reason)
        probe(subject)
    except SubjectError as exc:
        raise pytest.UsageError(f"--bn-dist-impl: {exc}") from None
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        shared_pool(subject.backend).stop()  # the xdist controller runs no test
    config.stash[DIST_SUBJECTS] = (subject,)


def report_header(config) -> str:
    """One header line: the distributed subjects, the timeout, the example count."""
    names = ", ".join(str(s) for s in config.stash[DIST_SUBJECTS])
    return (f"distributed subjects: {names}; timeout {TIMEOUT['seconds']:g} s; "
            f"{distributed_examples()} examples per distributed test")


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
            params.append(pytest.param(target_for(invariant, subject, subject.space()), id=ident))
    metafunc.parametrize("dist_target", params)
