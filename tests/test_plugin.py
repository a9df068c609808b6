"""The installed plugin in another project: silent until asked, configurable by ini."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

IMPL = "bn_invariants.zoo.base:ZooBatchNorm"
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
"""This checkout's bn_invariants (and its top-level folders, as in an editable install)."""


def _project(tmp_path: Path, ini: str = "") -> Path:
    (tmp_path / "strategies.py").write_text("from hypothesis import strategies as st\n"
                                            "small = st.integers(0, 3)\n")
    (tmp_path / "conftest.py").write_text("")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_own.py").write_text("from hypothesis import given\nfrom strategies import small\n\n"
                                       "@given(small)\ndef test_own(n):\n    assert n <= 3\n")
    (tmp_path / "pytest.ini").write_text(f"[pytest]\naddopts = -p no:cacheprovider\n{ini}")
    return tmp_path


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def test_loading_the_plugin_imports_no_torch():
    probe = "import sys, bn_invariants.plugin; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=ENV, timeout=120)
    assert result.stdout.strip() == "False", (
        f"torch imported at plugin load={result.stdout.strip()}{result.stderr[-500:]}, "
        f"but should be False")


def test_an_unrelated_project_runs_only_its_own_tests(tmp_path):
    result = _pytest(_project(tmp_path), "-q")
    assert result.returncode == 0, result.stdout[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("1 passed"), result.stdout[-500:]
    assert "batch-norm" not in result.stdout and "bn-invariants" not in result.stdout, (
        "the plugin printed into an unrelated run, but should stay silent")


def test_bn_impl_adds_the_invariant_tests_beside_the_projects_own(tmp_path):
    result = _pytest(_project(tmp_path), "--collect-only", "-q", f"--bn-impl={IMPL}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "tests/test_own.py::test_own" in result.stdout
    assert f"test_invariant[zero-bias-gradient-{IMPL}-cpu]" in result.stdout


def test_the_projects_strategies_module_is_not_shadowed(tmp_path):
    """The suite's own folders (strategies/, invariants/) sit beside bn_invariants in a
    source checkout; collecting the invariant tests must not put them first on sys.path."""
    project = _project(tmp_path)
    (project / "tests" / "test_own.py").write_text(
        "import strategies\n\ndef test_own():\n    assert hasattr(strategies, 'small'), "
        "strategies.__file__\n")
    result = _pytest(project, "-q", f"--bn-impl={IMPL}", "-k", "own or shift-invariance",
                     "--hypothesis-profile=ci", "--bn-device=cpu")  # one shift-invariance test
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout[-3000:]


def test_ini_keys_configure_the_run_and_minus_p_is_accepted(tmp_path):
    project = _project(tmp_path, f"bn_impl = {IMPL}\nbn_device = cpu\nbn_replicas = 2\n")
    result = _pytest(project, "--collect-only", "-q", "-p", "bn_invariants")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"test_invariant[shift-invariance-{IMPL}-cpu]" in result.stdout
    assert "-cuda]" not in result.stdout, "bn_device = cpu in the ini, but cuda tests were made"


def test_naming_a_path_runs_that_path_even_with_the_ini_keys(tmp_path):
    project = _project(tmp_path, f"bn_impl = {IMPL}\n")
    result = _pytest(project, "--collect-only", "-q", "tests/test_own.py")
    assert "test_invariant[" not in result.stdout, (
        "a run naming a path got the invariant tests, but should collect only that path")


def test_a_bad_ini_value_is_one_usage_error(tmp_path):
    result = _pytest(_project(tmp_path, f"bn_impl = {IMPL}\nbn_replicas = none\n"), "-q")
    assert result.returncode == 4
    assert "--bn-replicas=none: should be a whole number, at least 1" in result.stderr


@pytest.mark.parametrize("spec, expected", [
    ("no.such.module:BN", "does not import"),
    ("torch.nn:NoSuchNorm", "has no attribute"),
])
def test_a_bad_bn_impl_is_one_usage_error(tmp_path, spec, expected):
    result = _pytest(_project(tmp_path), "-q", f"--bn-impl={spec}")
    assert result.returncode == 4 and expected in result.stderr, result.stderr[-1000:]


def test_a_list_where_one_string_is_expected_is_one_usage_error(tmp_path):
    project = _project(tmp_path)
    (project / "pytest.ini").unlink()
    (project / "pyproject.toml").write_text(
        f'[tool.pytest.ini_options]\nbn_impl = ["{IMPL}", "torch.nn:BatchNorm2d"]\n')
    result = _pytest(project, "-q", "-p", "no:cacheprovider")
    assert result.returncode == 4 and "INTERNALERROR" not in result.stderr + result.stdout
    assert "ini key bn_impl = [" in result.stderr and "should be one string" in result.stderr
