"""What the plugin does once the invariants are asked for: load the subjects, probe
what they accept, parametrise the invariant tests, and report coverage."""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

from bn_invariants.invariants import BUILTIN_SUBJECTS, REGISTRY, SubjectError, load_subject
from bn_invariants.invariants.coverage import describe, probe
from bn_invariants.invariants.runner import target_for
from bn_invariants.invariants.subjects import REFERENCE_SUBJECT
from bn_invariants.plugin import COVERAGE, DEVICE_KINDS, REFERENCE, REPLICAS, SUBJECTS, setting
from bn_invariants.strategies import available_devices
from bn_invariants.strategies.profiles import current_profile, default_profile


def configure(config) -> None:
    """Load the subjects and the reference, probe their coverage, check the options."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # one intra-op thread per xdist worker: on tiny tensors, workers x threads
        # oversubscribing the cores costs far more than the threads win
        torch.set_num_threads(1)
    if not config.getoption("hypothesis_profile", default=None):
        settings.load_profile(default_profile())
    replicas = _replicas(config)
    impl = _load(config, "--bn-impl", None)
    subjects = (impl,) if impl else BUILTIN_SUBJECTS
    config.stash[REFERENCE] = _load(config, "--bn-ref", REFERENCE_SUBJECT)
    wanted = _devices(config)
    present = [d for d in wanted if d in available_devices()]
    missing = [d for d in setting(config, "--bn-device") or () if d not in present]
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
    config.stash[SUBJECTS] = subjects
    config.stash[COVERAGE] = coverage
    config.stash[REPLICAS] = replicas
    report_path = setting(config, "--bn-report")
    if report_path:
        from bn_invariants.report import register_report
        register_report(config, report_path)


def _replicas(config) -> int:
    raw = setting(config, "--bn-replicas") or 1
    try:
        replicas = int(raw)
    except ValueError:
        replicas = 0
    if replicas < 1:
        raise pytest.UsageError(f"--bn-replicas={raw}: should be a whole number, at least 1")
    return replicas


def _devices(config) -> tuple:
    chosen = setting(config, "--bn-device")
    unknown = [d for d in chosen or () if d not in DEVICE_KINDS]
    if unknown:
        raise pytest.UsageError(f"bn_device={unknown[0]}: should be one of {', '.join(DEVICE_KINDS)}")
    return tuple(chosen or DEVICE_KINDS)


def _load(config, option, default):
    spec = setting(config, option)
    try:
        return load_subject(spec, option) if spec else default
    except SubjectError as exc:
        raise pytest.UsageError(f"{option}: {exc}") from None


def _coverage_lines(config) -> list:
    return [f"  {name} on {device}: {describe(space)}"
            for (name, device), space in config.stash[COVERAGE].items()]


def report_header(config) -> list:
    """The run's header: invariants, torch, devices, profile, reference, coverage."""
    from bn_invariants import __version__, registry_hash
    return [
        f"bn-invariants {__version__} (registry {registry_hash()}): {len(REGISTRY)} invariants; "
        f"torch {torch.__version__}; devices {', '.join(available_devices())}; "
        f"profile {current_profile()}; reference {config.stash[REFERENCE]}",
        "coverage (what each subject accepts, found by probing):",
        *_coverage_lines(config),
    ]


def terminal_summary(terminalreporter, config) -> None:
    """The coverage again, at the end of the run."""
    terminalreporter.write_sep("-", "batch-norm coverage")
    for line in _coverage_lines(config):
        terminalreporter.write_line(line)


def _why_empty(invariant, subject, device) -> str:
    if not invariant.applies_on(device):
        return f"{invariant.id} applies only on {', '.join(invariant.devices)}, not on {device}"
    return f"{subject} accepts no input on {device} that {invariant.id} applies to"


def parametrize(metafunc) -> None:
    """One test per invariant x subject x device."""
    config = metafunc.config
    params = []
    for invariant in REGISTRY.values():
        if invariant.kind != "single":
            continue  # the distributed family: bn_invariants/distributed.py
        for subject in config.stash[SUBJECTS]:
            for device in _devices(config):
                ident = f"{invariant.id}-{subject.name}-{device}"
                space = config.stash[COVERAGE].get((subject.name, device))
                if space is None:
                    params.append(pytest.param(None, id=ident, marks=pytest.mark.skip(
                        reason=f"{device} is not available on this machine")))
                    continue
                target = target_for(invariant, subject, space, config.stash[REFERENCE],
                                    config.stash[REPLICAS])
                marks = [] if target.space else [pytest.mark.skip(reason=_why_empty(
                    invariant, subject, device))]
                params.append(pytest.param(target, id=ident, marks=marks))
    metafunc.parametrize("target", params)
