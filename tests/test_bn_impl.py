"""`pytest --bn-impl=...` end to end: clear errors, coverage, and a caught bug."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_pytest(*args, timeout=300):
    """Run the suite in a fresh interpreter from the repository root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


BAD = [
    ("torch.nn.BatchNorm2d", "should look like package.module:Name"),
    ("tests.fixtures.no_such_module:X", "does not import: ModuleNotFoundError"),
    ("tests.fixtures.bad_impls:Missing", "has no attribute 'Missing'"),
    ("tests.fixtures.bad_impls:NOT_CALLABLE", "is a int, but should be a class or factory"),
    ("tests.fixtures.bad_impls:NotAModule", "is a class that is not a torch.nn.Module"),
    ("tests.fixtures.bad_impls:raising_factory", "raised RuntimeError: no GPU kernels compiled"),
    ("tests.fixtures.bad_impls:WrongShape", "but should return the input's shape and dtype"),
    ("tests.fixtures.bad_impls:WrongDtype", "but should return the input's shape and dtype"),
    ("tests.fixtures.bad_impls:AcceptsNothing", "accepts no input"),
]


@pytest.mark.parametrize("spec, sentence", BAD, ids=[b[0].rpartition(":")[2] for b in BAD])
def test_a_bad_implementation_gets_one_clear_sentence(spec, sentence):
    result = run_pytest("--collect-only", "-q", f"--bn-impl={spec}")
    assert result.returncode != 0
    assert sentence in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1, result.stderr


def test_bad_reference_is_refused_the_same_way():
    result = run_pytest("--collect-only", "-q", "--bn-ref=tests.fixtures.bad_impls:Missing")
    assert result.returncode != 0
    assert "--bn-ref: 'tests.fixtures.bad_impls' has no attribute 'Missing'" in result.stderr


def test_torch_batchnorm2d_passes_and_reports_rank_4_only():
    result = run_pytest("-q", "--bn-impl=torch.nn:BatchNorm2d", "bn_invariants/invariant_tests.py",
                        "-k", "shift-invariance or zero-bias-gradient")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "torch.nn:BatchNorm2d on cpu: float32: rank 4; float64: rank 4;" in result.stdout


def test_detached_mean_fails_with_a_shrunk_counterexample():
    result = run_pytest("-q", "--bn-impl=bn_invariants.zoo.detached_mean:DetachedMeanBatchNorm",
                        "bn_invariants/invariant_tests.py", "-k", "zero-bias-gradient or no-bias-drift",
                        "--hypothesis-profile=ci")
    assert result.returncode == 1, result.stdout[-3000:]
    out = result.stdout
    assert "FAILED bn_invariants/invariant_tests.py::test_invariant[zero-bias-gradient-" in out
    assert "FAILED bn_invariants/invariant_tests.py::test_invariant[no-bias-drift-" in out
    assert "dl/db[0]=" in out and "but should be 0.0 ±" in out
    assert "(2, 1) float32 on cpu" in out, "counterexample not shrunk"
    assert "Target(" not in out and "severity=" not in out, "a dataclass dump in the report"
