"""Importing the suite must not initialise CUDA (it would fork-poison workers and cost seconds)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import torch
import bn_invariants.strategies, bn_invariants.invariants, bn_invariants.session, benchmarks.sweep, benchmarks.throughput
import bn_invariants.invariants.catalogue, bn_invariants.invariants.runner, bn_invariants.invariants.coverage
print("initialised" if torch.cuda.is_initialized() else "untouched")
"""


def test_importing_the_suite_does_not_initialise_cuda():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "untouched"
