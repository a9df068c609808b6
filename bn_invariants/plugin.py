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

from bn_invariants.options import (_OPTIONS, CHOICES, COVERAGE, DISTRIBUTED_TESTS,
                                   INVARIANT_TESTS, ONLY_INVARIANTS, _ini_name, is_active,
                                   is_distributed_active, setting)


def pytest_addoption(parser):
    group = parser.getgroup("bn-invariants", "batch-norm invariants (bn_invariants)")
    for option, kind, text in _OPTIONS:
        ini = _ini_name(option)
        if kind == "bool":
            group.addoption(option, action="store_true", default=None, help=text)
        elif option == "--bn-device":
            group.addoption(option, action="append", choices=CHOICES[option], default=None,
                            help=text)
        elif option in CHOICES:
            group.addoption(option, choices=CHOICES[option], default=None, help=text)
        else:
            group.addoption(option, default=None, help=text,
                            metavar="K" if option == "--bn-replicas" else None)
        parser.addini(ini, f"{text} (same as {option})", type=kind,
                      default=False if kind == "bool" else None)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if is_active(config) or is_distributed_active(config):
        # before Hypothesis's own plugin loads --hypothesis-profile: the suite's profiles
        # (dev, ci, ci-seeded, thorough) exist only in runs that check batch norms
        from bn_invariants.strategies.profiles import register_profiles
        register_profiles()
    config.addinivalue_line("markers", "bn_invariants: an invariant test added by the "
                                       "bn_invariants plugin (select with -m bn_invariants)")
    if not (is_active(config) or is_distributed_active(config)):
        _refuse_idle_options(config)
    if is_active(config) or is_distributed_active(config):
        # Hypothesis's explanation of a failure imports libcst, whose deprecation warnings
        # are neither the user's nor the suite's
        config.addinivalue_line("filterwarnings", "ignore:mypy_extensions.TypedDict is "
                                                  "deprecated:DeprecationWarning")
    if is_active(config):
        from bn_invariants import session  # torch and the registry load here, not before
        session.configure(config)
        if (setting(config, "--bn-impl") and in_this_repository(config)
                and config.args_source != pytest.Config.ArgsSource.ARGS):
            # checking one batch norm in the suite's own checkout: only the invariants, not
            # the self-tests (in another project they are added beside its own tests)
            config.args[:] = [str(INVARIANT_TESTS)]
            config.stash[ONLY_INVARIANTS] = True
        else:
            _add_tests(config, INVARIANT_TESTS, "--bn-impl")
    if is_distributed_active(config):
        from bn_invariants import distributed
        distributed.configure(config)
        if (setting(config, "--bn-dist-impl") and in_this_repository(config)
                and config.args_source != pytest.Config.ArgsSource.ARGS):
            # as for --bn-impl: only the distributed invariants, not the self-tests
            if not config.stash.get(ONLY_INVARIANTS, False):
                config.args[:] = []
            config.args.append(str(DISTRIBUTED_TESTS))
            config.stash[ONLY_INVARIANTS] = True
        else:
            _add_tests(config, DISTRIBUTED_TESTS, "--bn-dist-impl")
    if is_active(config) and _only_invariants(config):
        # the defects at the end say what each failure means; one block per failed test
        # before them would repeat it (-v or --tb brings the blocks back)
        config.option.tbstyle = "no"


def _only_invariants(config) -> bool:
    """Whether this run is the invariants alone (``-m bn_invariants``, or ``--bn-impl``
    in the suite's checkout), with pytest's default traceback style and verbosity: then
    the per-test blocks are left out of the output (the defects hold what they say)."""
    alone = (config.stash.get(ONLY_INVARIANTS, False)
             or (config.getoption("markexpr", default="") or "").strip() == "bn_invariants")
    return alone and config.getoption("tbstyle", default="auto") == "auto" \
        and config.get_verbosity() <= 0


def _refuse_idle_options(config) -> None:
    """An option of this plugin on the command line of a run that checks nothing would be
    silently ignored: say what activates the invariants instead."""
    given = [o for o, _, _ in _OPTIONS if config.getoption(o, default=None) not in (None, False)]
    if given:
        raise pytest.UsageError(f"{given[0]} has nothing to apply to: name the batch norm to "
                                f"check with --bn-impl=package.module:Name (or --bn-builtin "
                                f"for torch's own, --bn-dist-impl for a synchronised one)")


def in_this_repository(config) -> bool:
    """Whether pytest runs in the suite's own source checkout (its self-tests beside it)."""
    return Path(config.rootpath).resolve() == INVARIANT_TESTS.resolve().parent.parent


def _add_tests(config, module: Path, impl_option: str) -> None:
    """Add ``module``'s tests to this run when it names no paths (pytest's testpaths or the
    current directory), or when ``impl_option``/--bn-builtin is on the command line itself:
    ``pytest tests/test_x.py`` with the options in an ini file runs only that file."""
    no_paths = config.args_source != pytest.Config.ArgsSource.ARGS
    asked = (config.getoption(impl_option, default=None)
             or config.getoption("--bn-builtin", default=None))
    if (no_paths or asked) and str(module) not in config.args:
        config.args.append(str(module))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Collecting the invariant tests must not change sys.path.  pytest's default import
    mode would put the folder above ``bn_invariants`` first; in a source checkout that
    folder holds ``strategies/`` and ``invariants/``, which would shadow the project's own
    modules of those names.  Only the folders on the way to the invariant tests that are
    not the project's own are guarded."""
    path = getattr(collector, "path", None)
    rootpath = collector.config.rootpath
    ours = (path is not None and not rootpath.is_relative_to(path)
            and any(tests.is_relative_to(path) for tests in (INVARIANT_TESTS, DISTRIBUTED_TESTS)))
    if not ours:
        return (yield)
    before = list(sys.path)
    try:
        return (yield)
    finally:
        sys.path[:] = before


def pytest_report_header(config):
    lines = []
    if is_active(config):
        from bn_invariants import session
        lines += session.report_header(config)
    if is_distributed_active(config):
        from bn_invariants import distributed
        lines.append(distributed.report_header(config))
    return lines or None


def pytest_terminal_summary(terminalreporter, config):
    if is_active(config) and COVERAGE in config.stash:
        from bn_invariants import session
        session.terminal_summary(terminalreporter, config)


def pytest_generate_tests(metafunc):
    wanted = {"target", "contract"} & set(metafunc.fixturenames)
    if wanted and is_active(metafunc.config):
        from bn_invariants import session
        session.parametrize(metafunc)
    if "dist_target" in metafunc.fixturenames and is_distributed_active(metafunc.config):
        from bn_invariants import distributed
        distributed.parametrize(metafunc)
