"""The plugin's options and what its layers share through the pytest config: the option
table, the stash keys, and ``setting`` (the command line, then the ini file).

A leaf module: it imports nothing of the suite, so the plugin, the session, the outcomes,
the report, the summary and the distributed entry all read it without importing each other.
"""
from __future__ import annotations

from pathlib import Path

import pytest

SUBJECTS = pytest.StashKey[tuple]()
REFERENCE = pytest.StashKey[object]()
COVERAGE = pytest.StashKey[dict]()
REPLICAS = pytest.StashKey[int]()
ONLY_INVARIANTS = pytest.StashKey[bool]()
INVARIANT_TESTS = Path(__file__).with_name("invariant_tests.py")
DISTRIBUTED_TESTS = Path(__file__).with_name("distributed_tests.py")
PROBED = pytest.StashKey[dict]()
"""(subject name, device) -> probing.Probed."""
OUTCOMES = pytest.StashKey[object]()
"""The run's outcomes.Outcomes."""

DEVICE_KINDS = ("cpu", "cuda")
_OPTIONS = (
    # (option, ini type, help)
    ("--bn-impl", "string", "check this BatchNorm2d-style class or factory, "
                            "package.module:Name (activates the invariants)"),
    ("--bn-builtin", "bool", "check torch's own batch norms and the float64 reference "
                             "(activates the invariants)"),
    ("--bn-ref", "string", "differential mode: also check agreement with this implementation, "
                           "package.module:Name (default: the float64 reference)"),
    ("--bn-replicas", "string", "check K problems per drawn example: the example, then K-1 "
                                "copies with derived seeds (default 1)"),
    ("--bn-device", "linelist", "restrict to this device, cpu or cuda (repeatable; default: "
                                "every available one)"),
    ("--bn-dist-impl", "string", "check this synchronised batch norm (BatchNorm2d's constructor, "
                                 "run inside an initialised process group), package.module:Name, "
                                 "with the distributed family (activates it)"),
    ("--bn-dist-device", "string", "where the distributed family runs: cpu (gloo, default) or "
                                   "cuda (NCCL, one GPU per rank)"),
    ("--bn-dist-timeout", "string", "seconds without progress on the ranks still out (no "
                                    "answer, no computation) before the workers are stopped and "
                                    "the test fails (default 60); a hang is reported earlier"),
    ("--bn-report", "string", "write a JSON report of every invariant test (outcome, dtypes "
                              "covered, skip reasons) and the probed coverage to PATH"),
    ("--bn-strict", "bool", "report deviations inherited from torch's own kernel as failures "
                            "(default: non-strict xfails, counted in the summary)"),
    ("--bn-running-var", "string", "the running-variance convention the subject declares: "
                                   "unbiased (torch, default) or biased (÷n)"),
    ("--bn-momentum", "string", "the momentum convention the subject declares: torch "
                                "(new = (1-m)·old + m·batch, default) or keep "
                                "(new = m·old + (1-m)·batch, Keras)"),
    ("--bn-frozen", "bool", "the subject is an eval-only (frozen) batch norm: training mode "
                            "behaves as eval, and only the invariants that apply run"),
    ("--bn-level", "string", "the least serious level of defect that fails the run: semantic, "
                             "precision or range (default: range, i.e. every level); defects "
                             "past it are still checked and reported, not failing"),
    ("--bn-dtypes", "string", "check only these dtypes, comma-separated, e.g. float32,float64 "
                              "(default: every dtype the subject accepts)"),
    ("--bn-baseline", "string", "an earlier --bn-report file: the violations it records (same "
                                "invariant, device and dtype) are known, not failures; new ones "
                                "fail, and the ones that now hold are listed"),
)
CHOICES = {"--bn-device": DEVICE_KINDS, "--bn-running-var": ("unbiased", "biased"),
           "--bn-momentum": ("torch", "keep"), "--bn-level": ("semantic", "precision", "range")}
"""Options with a fixed set of values (checked on the command line and in the ini file)."""


def _ini_name(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def setting(config, option: str):
    """An option's value: the command line first, then the ini key, else None."""
    value = config.getoption(option, default=None)
    if value is not None:
        return value
    ini = _ini_name(option)
    value = config.getini(ini) or None
    kind = next(k for o, k, _ in _OPTIONS if o == option)
    if kind == "string" and value is not None and not isinstance(value, str):
        raise pytest.UsageError(f"ini key {ini} = {value!r}: should be one string, "
                                f"e.g. {ini} = \"package.module:Name\"")
    return value


def is_active(config) -> bool:
    """Whether this run checks the single-process invariants (``--bn-impl``, or
    ``--bn-builtin`` without ``--bn-dist-impl``)."""
    return bool(setting(config, "--bn-impl")
                or (setting(config, "--bn-builtin") and not setting(config, "--bn-dist-impl")))


def is_distributed_active(config) -> bool:
    """Whether this run checks the distributed family (``--bn-dist-impl``, or
    ``--bn-builtin`` without ``--bn-impl``)."""
    return bool(setting(config, "--bn-dist-impl")
                or (setting(config, "--bn-builtin") and not setting(config, "--bn-impl")))


