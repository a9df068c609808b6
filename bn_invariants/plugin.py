"""The pytest plugin (entry point ``pytest11: bn_invariants``).

Loading it changes nothing: it only adds options.  It runs the invariants when asked:
``--bn-impl=package.module:Name`` (or ini ``bn_impl``) checks that batch norm, and
``--bn-builtin`` (or ini ``bn_builtin = true``) checks torch's own.  Every option is
also an ini key of the same name with underscores.  torch is imported only then.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

SUBJECTS = pytest.StashKey[tuple]()
REFERENCE = pytest.StashKey[object]()
COVERAGE = pytest.StashKey[dict]()
REPLICAS = pytest.StashKey[int]()
INVARIANT_TESTS = Path(__file__).with_name("invariant_tests.py")

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
    ("--bn-report", "string", "write a JSON report of every invariant test (outcome, dtypes "
                              "covered, skip reasons) and the probed coverage to PATH"),
)


def pytest_addoption(parser):
    group = parser.getgroup("bn-invariants", "batch-norm invariants (bn_invariants)")
    for option, kind, text in _OPTIONS:
        ini = _ini_name(option)
        if option == "--bn-builtin":
            group.addoption(option, action="store_true", default=None, help=text)
        elif option == "--bn-device":
            group.addoption(option, action="append", choices=DEVICE_KINDS, default=None,
                            help=text)
        else:
            group.addoption(option, default=None, help=text,
                            metavar="K" if option == "--bn-replicas" else None)
        parser.addini(ini, f"{text} (same as {option})", type=kind,
                      default=False if kind == "bool" else None)


def _ini_name(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def setting(config, option: str):
    """An option's value: the command line first, then the ini key, else None."""
    value = config.getoption(option, default=None)
    if value is None:
        value = config.getini(_ini_name(option)) or None
    return value


def is_active(config) -> bool:
    """Whether this run checks invariants (``--bn-impl`` or ``--bn-builtin``)."""
    return bool(setting(config, "--bn-impl") or setting(config, "--bn-builtin"))


def pytest_configure(config):
    config.addinivalue_line("markers", "bn_invariants: an invariant test added by the "
                                       "bn_invariants plugin (select with -m bn_invariants)")
    if not is_active(config):
        return
    from bn_invariants import session  # torch and the registry load here, not before
    session.configure(config)
    if _adds_invariant_tests(config) and str(INVARIANT_TESTS) not in config.args:
        config.args.append(str(INVARIANT_TESTS))


def _adds_invariant_tests(config) -> bool:
    """Whether to add the invariant tests to this run: when it names no paths (pytest's
    testpaths or the current directory), or when --bn-impl/--bn-builtin is on the command
    line itself.  ``pytest tests/test_x.py`` with the options in an ini file runs that file."""
    no_paths = config.args_source != pytest.Config.ArgsSource.ARGS
    asked = (config.getoption("--bn-impl", default=None)
             or config.getoption("--bn-builtin", default=None))
    return no_paths or bool(asked)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Collecting the invariant tests must not change sys.path.  pytest's default import
    mode would put the folder above ``bn_invariants`` first; in a source checkout that
    folder holds ``strategies/`` and ``invariants/``, which would shadow the project's own
    modules of those names.  Only the folders on the way to the invariant tests that are
    not the project's own are guarded."""
    path = getattr(collector, "path", None)
    rootpath = collector.config.rootpath
    ours = (path is not None and INVARIANT_TESTS.is_relative_to(path)
            and not rootpath.is_relative_to(path))
    if not ours:
        return (yield)
    before = list(sys.path)
    try:
        return (yield)
    finally:
        sys.path[:] = before


def pytest_report_header(config):
    if is_active(config):
        from bn_invariants import session
        return session.report_header(config)
    return None


def pytest_terminal_summary(terminalreporter, config):
    if is_active(config) and COVERAGE in config.stash:
        from bn_invariants import session
        session.terminal_summary(terminalreporter, config)


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames and is_active(metafunc.config):
        from bn_invariants import session
        session.parametrize(metafunc)
