"""What the plugin does once the invariants are asked for: load the subjects, probe
what they accept, parametrise the invariant tests, and report coverage."""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

from bn_invariants.invariants import BUILTIN_SUBJECTS, REGISTRY, SubjectError, load_subject
from bn_invariants.invariants.conventions import Conventions, declare, declared
from bn_invariants.invariants.runner import target_for
from bn_invariants.invariants.subjects import REFERENCE_SUBJECT
from bn_invariants.outcomes import Outcomes
from bn_invariants.options import (CHOICES, COVERAGE, DEVICE_KINDS, OUTCOMES, PROBED,
                                   REFERENCE, REPLICAS, SUBJECTS, setting)
from bn_invariants.probing import parse_dtypes, probe_subject
from bn_invariants.targets import CheckedTarget, safe_id
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
    declare(_conventions(config))
    impl = _load(config, "--bn-impl", None)
    subjects = (impl,) if impl else BUILTIN_SUBJECTS
    config.stash[REFERENCE] = _load(config, "--bn-ref", REFERENCE_SUBJECT)
    wanted = _devices(config)
    present = [d for d in wanted if d in available_devices()]
    missing = [d for d in setting(config, "--bn-device") or () if d not in present]
    if missing:
        raise pytest.UsageError(f"--bn-device={missing[0]}: no {missing[0]} device is "
                                f"available on this machine")
    dtypes = _scope(config)
    try:
        probed = {(s.name, d): probe_subject(s, d, dtypes) for s in subjects for d in present}
    except SubjectError as exc:
        raise pytest.UsageError(f"--bn-impl: {exc}") from None
    coverage = {key: p.space for key, p in probed.items()}
    for subject in subjects:
        spaces = [coverage[(subject.name, d)] for d in present]
        if spaces and not any(spaces):
            left = sorted({t for d in present for t in probed[(subject.name, d)].left_out})
            if left:
                raise pytest.UsageError(
                    f"--bn-dtypes={','.join(dtypes)}: {subject} accepts none of them on "
                    f"{', '.join(present)} (it accepts {', '.join(left)}), so nothing could "
                    f"be checked")
            raise pytest.UsageError(
                f"--bn-impl: {subject} accepts no input: its forward pass raised for every "
                f"rank 2-5 and dtype on {', '.join(present)} (first: {spaces[0].refusal}), "
                f"so nothing could be checked")
    config.stash[SUBJECTS] = subjects
    config.stash[COVERAGE] = coverage
    config.stash[PROBED] = probed
    config.stash[REPLICAS] = replicas
    outcomes = Outcomes(config, config.stash[REFERENCE], bool(setting(config, "--bn-strict")),
                        level=_level(config), baseline=_baseline(config),
                        baseline_path=setting(config, "--bn-baseline"))
    config.stash[OUTCOMES] = outcomes
    config.pluginmanager.register(outcomes, "bn-outcomes")
    report_path = setting(config, "--bn-report")
    if report_path:
        from bn_invariants.report import register_report
        register_report(config, report_path)


def _conventions(config) -> Conventions:
    """The declared conventions; a value outside an option's choices is a usage error."""
    values = {}
    for option in ("--bn-running-var", "--bn-momentum"):
        value = setting(config, option)
        if value is not None and value not in CHOICES[option]:
            raise pytest.UsageError(f"{option}={value}: should be one of "
                                    f"{', '.join(CHOICES[option])}")
        values[option] = value or CHOICES[option][0]
    return Conventions(values["--bn-running-var"], values["--bn-momentum"],
                       bool(setting(config, "--bn-frozen")))


def _level(config) -> str:
    """--bn-level: the least serious level that fails the run (default range: all)."""
    value = setting(config, "--bn-level") or "range"
    if value not in CHOICES["--bn-level"]:
        raise pytest.UsageError(f"--bn-level={value}: should be one of "
                                f"{', '.join(CHOICES['--bn-level'])}")
    return value


def _scope(config) -> tuple | None:
    """--bn-dtypes: the dtypes to check (None: every accepted one)."""
    try:
        return parse_dtypes(setting(config, "--bn-dtypes"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _baseline(config):
    """--bn-baseline: what an earlier report recorded (empty without one)."""
    from bn_invariants.defects import Baseline, BaselineError, load_baseline
    path = setting(config, "--bn-baseline")
    if not path:
        return Baseline()
    try:
        return load_baseline(path)
    except BaselineError as exc:
        raise pytest.UsageError(f"--bn-baseline: {exc}") from None


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
    return [f"  {name} on {device}: {probed.coverage_line()}"
            for (name, device), probed in config.stash[PROBED].items()]


def _conventions_line() -> str:
    flags = declared().flags()
    return ("declared conventions: " + " ".join(flags)) if flags else \
        "conventions: torch's (unbiased running variance, new = (1-m)·old + m·batch)"


def report_header(config) -> list:
    """The run's header: invariants, torch, devices, profile, reference, coverage."""
    from bn_invariants import __version__, registry_hash
    return [
        f"bn-invariants {__version__} (registry {registry_hash()}): {len(REGISTRY)} invariants; "
        f"torch {torch.__version__}; devices {', '.join(available_devices())}; "
        f"profile {current_profile()}; reference {config.stash[REFERENCE]}",
        _conventions_line(),
        "coverage (what each subject accepts, found by probing):",
        *_coverage_lines(config),
    ]


def terminal_summary(terminalreporter, config) -> None:
    """The coverage again at the end of the run, then the verdicts: skips grouped by
    reason, failures inherited from torch, flags that would explain the failures."""
    from bn_invariants.summary import write_summary
    write_summary(terminalreporter, config, _coverage_lines(config))


def _why_empty(invariant, subject, device, whole_space=None) -> str:
    if not invariant.applies_on(device):
        return f"{invariant.id} applies only on {', '.join(invariant.devices)}, not on {device}"
    if whole_space is not None and invariant.space_for(whole_space):
        return (f"every input {subject} accepts on {device} that {invariant.id} applies to "
                f"is in a known deviation of torch (replayed by tests/test_known_deviations.py)")
    return f"{subject} accepts no input on {device} that {invariant.id} applies to"


def _skip_reason(invariant, subject, device, probed, target) -> str:
    """Why this invariant test cannot run ('' when it can)."""
    if not declared().applies(invariant.id):
        return "does not apply to an eval-only batch norm (--bn-frozen)"
    if probed.diagnosis is not None and probed.diagnosis.verdict(declared()) \
            and not probed.diagnosis.frozen_like:
        return f"{subject} does not normalise over the batch (see batch-normalisation)"
    if not target.space:
        return _why_empty(invariant, subject, device, probed.space)
    return target.declined_everywhere()


def parametrize(metafunc) -> None:
    """One test per invariant x subject x device (``target``), and one per contract x
    subject x device (``contract``)."""
    config = metafunc.config
    if "contract" in metafunc.fixturenames:
        metafunc.parametrize("contract", _contract_params(config))
        return
    params = []
    for invariant in REGISTRY.values():
        if invariant.kind != "single":
            continue  # the distributed family: bn_invariants/distributed.py
        for subject in config.stash[SUBJECTS]:
            for device in _devices(config):
                ident = safe_id(invariant.id, subject.name, device)
                probed = config.stash[PROBED].get((subject.name, device))
                if probed is None:
                    params.append(pytest.param(None, id=ident, marks=pytest.mark.skip(
                        reason=f"{device} is not available on this machine")))
                    continue
                target = CheckedTarget(target_for(invariant, subject, probed.space,
                                                  config.stash[REFERENCE],
                                                  config.stash[REPLICAS]),
                                       probed.capabilities)
                reason = _skip_reason(invariant, subject, device, probed, target)
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                params.append(pytest.param(target, id=ident, marks=marks))
    metafunc.parametrize("target", params)


def _contract_params(config) -> list:
    """(contract id, subject, message) for the batch-normalisation verdict, the
    construction contract and the output contract of each rank."""
    params = []
    for (name, device), probed in config.stash[PROBED].items():
        for contract, message in probed.contracts(declared()).items():
            ident = safe_id(contract, name, device)
            params.append(pytest.param((contract, name, device, message), id=ident))
    return params
