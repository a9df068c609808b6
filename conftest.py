"""pytest wiring: options, Hypothesis profiles, subjects, coverage, report header.

Thin on purpose: everything it shows or runs comes from the invariant registry.
"""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from invariants import BUILTIN_SUBJECTS, REGISTRY, SubjectError, load_subject
from invariants.subjects import REFERENCE_SUBJECT
from invariants.coverage import describe, probe
from invariants.runner import target_for
from strategies import available_devices
from strategies.devices import DEVICE_KINDS

pytest_plugins = ("tests.plugins.json_report", "tests.plugins.distributed")

_QUIET_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("dev", max_examples=20, deadline=None,
                          suppress_health_check=_QUIET_CHECKS)
settings.register_profile("ci", max_examples=30, derandomize=True, database=None,
                          deadline=None, print_blob=True, suppress_health_check=_QUIET_CHECKS)
settings.register_profile("ci-seeded", settings.get_profile("ci"), derandomize=False)
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=_QUIET_CHECKS)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

SUBJECTS = pytest.StashKey[tuple]()
REFERENCE = pytest.StashKey[object]()
COVERAGE = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("batch-norm invariants")
    group.addoption("--bn-impl", metavar="package.module:Name", default=None,
                    help="check this BatchNorm2d-style class or factory instead of torch's own")
    group.addoption("--bn-ref", metavar="package.module:Name", default=None,
                    help="differential mode: also check agreement with this implementation "
                         "(default: the float64 reference)")
    group.addoption("--bn-replicas", metavar="K", type=int, default=1,
                    help="check K problems per drawn example: the example, then K-1 copies "
                         "with derived seeds (cheap extra coverage; default 1)")
    group.addoption("--bn-device", action="append", choices=DEVICE_KINDS, default=None,
                    help="restrict to this device (repeatable; default: every available one)")


def _devices(config) -> tuple:
    return tuple(config.getoption("--bn-device") or DEVICE_KINDS)


def _load(config, option, default):
    spec = config.getoption(option)
    try:
        return load_subject(spec, option) if spec else default
    except SubjectError as exc:
        raise pytest.UsageError(f"{option}: {exc}") from None


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # one intra-op thread per xdist worker: on tiny tensors, workers x threads
        # oversubscribing the cores costs far more than the threads win
        torch.set_num_threads(1)
    subjects = _load(config, "--bn-impl", None)
    subjects = (subjects,) if subjects else BUILTIN_SUBJECTS
    config.stash[REFERENCE] = _load(config, "--bn-ref", REFERENCE_SUBJECT)
    present = [d for d in _devices(config) if d in available_devices()]
    missing = [d for d in config.getoption("--bn-device") or () if d not in present]
    if missing:
        raise pytest.UsageError(f"--bn-device={missing[0]}: no {missing[0]} device is "
                                f"available on this machine")
    try:
        coverage = {(s.name, d): probe(s, d) for s in subjects for d in present}
    except SubjectError as exc:
        raise pytest.UsageError(f"--bn-impl: {exc}") from None
    for subject in subjects:
        spaces = [coverage[(subject.name, d)] for d in present]
        if spaces and not any(spaces):
            raise pytest.UsageError(
                f"--bn-impl: {subject} accepts no input: its forward pass raised for every "
                f"rank 2-5 and dtype on {', '.join(present)} (first: {spaces[0].refusal}), "
                f"so nothing could be checked")
    if config.getoption("--bn-replicas") < 1:
        raise pytest.UsageError(f"--bn-replicas={config.getoption('--bn-replicas')}: "
                                f"should be at least 1")
    config.stash[SUBJECTS] = subjects
    config.stash[COVERAGE] = coverage


def _coverage_lines(config) -> list:
    return [f"  {name} on {device}: {describe(space)}"
            for (name, device), space in config.stash[COVERAGE].items()]


def pytest_report_header(config):
    return [
        f"batch-norm invariants: {len(REGISTRY)}; torch {torch.__version__}; "
        f"devices {', '.join(available_devices())}; profile {settings._current_profile}; "
        f"reference {config.stash[REFERENCE]}",
        "coverage (what each subject accepts, found by probing):",
        *_coverage_lines(config),
    ]


def pytest_terminal_summary(terminalreporter, config):
    if COVERAGE in config.stash:
        terminalreporter.write_sep("-", "batch-norm coverage")
        for line in _coverage_lines(config):
            terminalreporter.write_line(line)


def _why_empty(invariant, subject, device) -> str:
    if not invariant.applies_on(device):
        return f"{invariant.id} applies only on {', '.join(invariant.devices)}, not on {device}"
    return f"{subject} accepts no input on {device} that {invariant.id} applies to"


def pytest_generate_tests(metafunc):
    if "target" not in metafunc.fixturenames:
        return
    config = metafunc.config
    params = []
    for invariant in REGISTRY.values():
        if invariant.kind != "single":
            continue  # distributed invariants: tests/plugins/distributed.py
        for subject in config.stash[SUBJECTS]:
            for device in _devices(config):
                ident = f"{invariant.id}-{subject.name}-{device}"
                space = config.stash[COVERAGE].get((subject.name, device))
                if space is None:
                    params.append(pytest.param(None, id=ident, marks=pytest.mark.skip(
                        reason=f"{device} is not available on this machine")))
                    continue
                target = target_for(invariant, subject, space, config.stash[REFERENCE],
                                    config.getoption("--bn-replicas"))
                marks = [] if target.space else [pytest.mark.skip(reason=_why_empty(
                    invariant, subject, device))]
                params.append(pytest.param(target, id=ident, marks=marks))
    metafunc.parametrize("target", params)
