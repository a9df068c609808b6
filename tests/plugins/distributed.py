"""pytest wiring of the distributed family: options, the subjects, parametrisation.

Distributed invariants (``Invariant.kind == "distributed"``) are checked by
tests/test_distributed.py against distributed subjects; conftest.py's own
parametrisation keeps to the single-process ones.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from invariants import REGISTRY, SubjectError
from invariants.distributed.pool import DEFAULT_TIMEOUT_S, shared_pool
from invariants.distributed.probe import probe
from invariants.distributed.run import TIMEOUT
from invariants.distributed.subjects import BUILTIN_DIST_SUBJECTS, dist_subject, unavailable
from invariants.runner import target_for

DIST_SUBJECTS = pytest.StashKey[tuple]()
EXAMPLE_SHARE = 4
"""The distributed family runs 1/EXAMPLE_SHARE of the profile's examples (at least 3):
an example costs W processes and a few collectives."""


def distributed_examples() -> int:
    """max_examples of the distributed tests under the current profile (ci: 7)."""
    return max(3, settings.default.max_examples // EXAMPLE_SHARE)


def pytest_addoption(parser):
    group = parser.getgroup("batch-norm invariants")
    group.addoption("--bn-dist-impl", metavar="package.module:Name", default=None,
                    help="check this synchronised batch norm (BatchNorm2d's constructor, run "
                         "inside an initialised process group) with the distributed family")
    group.addoption("--bn-dist-device", choices=("cpu", "cuda"), default="cpu",
                    help="where --bn-dist-impl runs: cpu (gloo, default) or cuda (NCCL, one "
                         "GPU per rank)")
    group.addoption("--bn-dist-timeout", metavar="SECONDS", type=float, default=DEFAULT_TIMEOUT_S,
                    help="seconds one distributed example may take before its workers are "
                         f"stopped and the test fails (default {DEFAULT_TIMEOUT_S:g})")


def pytest_configure(config):
    TIMEOUT["seconds"] = config.getoption("--bn-dist-timeout")
    spec = config.getoption("--bn-dist-impl")
    if not spec:
        config.stash[DIST_SUBJECTS] = BUILTIN_DIST_SUBJECTS
        return
    try:
        subject = dist_subject(spec, config.getoption("--bn-dist-device"))
        reason = unavailable(subject)
        if reason:
            raise SubjectError(reason)
        probe(subject)
    except SubjectError as exc:
        raise pytest.UsageError(f"--bn-dist-impl: {exc}") from None
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        shared_pool(subject.backend).stop()  # the xdist controller runs no test
    config.stash[DIST_SUBJECTS] = (subject,)


def pytest_report_header(config):
    names = ", ".join(str(s) for s in config.stash[DIST_SUBJECTS])
    return [f"distributed subjects: {names}; timeout {TIMEOUT['seconds']:g} s; "
            f"{distributed_examples()} examples per distributed test"]


def pytest_generate_tests(metafunc):
    if "dist_target" not in metafunc.fixturenames:
        return
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
