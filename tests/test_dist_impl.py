"""`--bn-dist-impl` end to end: one clear sentence for an implementation that does not
import, deadlocks or returns different shapes on different ranks; a broken one fails with
a reproducible case.  The probe's sentences are checked in this process (on the shared
pool); the command line's one-line form once, in a fresh pytest."""
import subprocess
import sys
import time

import pytest

from bn_invariants.invariants import SubjectError
from bn_invariants.invariants.distributed import pool
from bn_invariants.invariants.distributed.probe import probe
from bn_invariants.invariants.distributed.run import TIMEOUT
from bn_invariants.invariants.distributed.subjects import dist_subject
from tests.test_bn_impl import ROOT, run_pytest


def test_a_missing_module_gets_one_line_on_the_command_line():
    result = run_pytest("--collect-only", "-q", "--bn-dist-impl=tests.fixtures.no_such_module:X")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert error_lines == [
        "ERROR: --bn-dist-impl: module 'tests.fixtures.no_such_module' of "
        "'tests.fixtures.no_such_module:X' does not import: ModuleNotFoundError: No module "
        "named 'tests.fixtures.no_such_module'"], result.stderr


def test_a_deadlock_is_named_by_its_collective_long_before_the_timeout(monkeypatch):
    monkeypatch.setitem(TIMEOUT, "seconds", 60.0)
    monkeypatch.setattr(pool, "HANG_S", 1.0)  # three looks a second apart
    start = time.monotonic()
    with pytest.raises(SubjectError) as info:
        probe(dist_subject("tests.fixtures.bad_dist_impls:DeadlocksOnRankZero"))
    assert time.monotonic() - start < 30, "the deadlock waited for the timeout"
    message = str(info.value)
    assert message.startswith("tests.fixtures.bad_dist_impls:DeadlocksOnRankZero deadlocks in "
                              "its probe on 2 ranks (probe_inputs on 2 ranks: a collective not "
                              "every rank reached"), message
    assert "rank 0 waits in all_reduce (called from " in message, message
    assert message.endswith("--bn-dist-timeout sets the last-resort limit"), message


def test_different_shapes_on_different_ranks_are_named():
    with pytest.raises(SubjectError) as info:
        probe(dist_subject("tests.fixtures.bad_dist_impls:ShapeDiffersOnRankOne"))
    assert str(info.value) == (
        "tests.fixtures.bad_dist_impls:ShapeDiffersOnRankOne returned shapes that do not match "
        "the ranks' slices (rank 0 (2, 3, 2, 2) for its (2, 3, 2, 2) slice, rank 1 (3, 2, 2) "
        "for its (1, 3, 2, 2) slice), but each rank should return its own slice's shape")
    assert "\n" not in str(info.value)


def test_a_broken_implementation_fails_with_a_reproducible_case():
    result = run_pytest("-q", "--hypothesis-profile=ci", "-p", "no:xdist",
                        "--bn-dist-impl=bn_invariants.zoo.distributed:NoAllReduceBackwardBatchNorm",
                        "bn_invariants/distributed_tests.py", "-k", "distributed-input-gradient")
    assert result.returncode == 1, result.stdout[-3000:]
    out = result.stdout
    assert ("FAILED bn_invariants/distributed_tests.py::test_distributed_invariant"
            "[distributed-input-gradient-bn_invariants.zoo.distributed:"
            "NoAllReduceBackwardBatchNorm-cpu]") in out
    assert "sum over ranks of sum_i dl/dx_i[0]=" in out
    lines = out.splitlines()
    start = lines.index("Replay the check of this case (from the directory pytest ran in):")
    replay = "\n".join(line.removeprefix("  ") for line in lines[start + 1:start + 5])
    assert "DistCase(problem=Problem(shape=" in replay and "sizes=(" in replay, replay
    again = subprocess.run([sys.executable, "-c", replay], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 1, again.stderr[-2000:]
    assert "InvariantViolation: sum over ranks of sum_i dl/dx_i[0]=" in again.stderr, \
        again.stderr[-2000:]
