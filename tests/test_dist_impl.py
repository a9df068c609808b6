"""`pytest --bn-dist-impl=...` end to end: one clear sentence for an implementation that
does not import, deadlocks or returns different shapes on different ranks; a correct
one passes and a broken one fails with its case."""
import time

import pytest

from tests.test_bn_impl import run_pytest

BAD = [
    ("tests.fixtures.no_such_module:X", [], "does not import: ModuleNotFoundError"),
    ("tests.fixtures.bad_dist_impls:DeadlocksOnRankZero", ["--bn-dist-timeout=5"],
     "did not finish a forward pass on 2 ranks within 5 s: it deadlocks"),
    ("tests.fixtures.bad_dist_impls:ShapeDiffersOnRankOne", [],
     "returned shapes that do not match the ranks' slices (rank 0 (2, 3, 2, 2) for its "
     "(2, 3, 2, 2) slice, rank 1 (3, 2, 2) for its (1, 3, 2, 2) slice)"),
]


@pytest.mark.parametrize("spec, extra, sentence", BAD, ids=[b[0].rpartition(":")[2] for b in BAD])
def test_a_bad_distributed_implementation_gets_one_clear_sentence(spec, extra, sentence):
    start = time.monotonic()
    result = run_pytest("--collect-only", "-q", f"--bn-dist-impl={spec}", *extra)
    assert result.returncode != 0
    assert sentence in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1 and error_lines[0].startswith("ERROR: --bn-dist-impl: "), \
        result.stderr
    assert time.monotonic() - start < 120


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
    assert "reproduce: Case(problem=Problem(shape=" in out and "'sizes': (" in out
