"""Importing the suite must not initialise CUDA (it would fork-poison workers and cost seconds)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import torch
import strategies, invariants, conftest, benchmarks.sweep, benchmarks.throughput
import invariants.catalogue, invariants.runner, invariants.coverage
print("initialised" if torch.cuda.is_initialized() else "untouched")
"""


def test_importing_the_suite_does_not_initialise_cuda():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "untouched"
