"""The stand-alone reproduction never costs the verdict: found by a new user's run, where
an empty-batch violation crashed the whole pytest session (INTERNALERROR) while the suite
built its script: batch_norm64 took amax over an empty batch."""
import pytest

from bn_invariants import zoo
from bn_invariants.invariants import REGISTRY, Case, InvariantViolation
from bn_invariants.invariants import reproduction
from bn_invariants.invariants.runner import check_case
from bn_invariants.invariants.subjects import Subject
from bn_invariants.strategies import Problem

POISONED = Subject("EmptyBatchPoisonsStats", zoo.EmptyBatchPoisonsStatsBatchNorm)
EMPTY = Case(Problem((0, 1)))


def violation_message() -> str:
    with pytest.raises(InvariantViolation) as caught:
        check_case(REGISTRY["empty-batch"], POISONED, EMPTY)
    return str(caught.value)


def test_an_empty_batch_violation_builds_its_reproduction_without_crashing():
    assert reproduction.reproduce(REGISTRY["empty-batch"], POISONED, EMPTY,
                                  violation_message()) == ""


def test_a_failing_script_builder_is_reported_as_the_suites_bug(monkeypatch):
    def broken(*args, **kwargs):
        raise IndexError("amax(): Expected reduction dim 0 to have non-zero size.")
    monkeypatch.setattr(reproduction, "find_call", broken)
    text = reproduction.reproduce(REGISTRY["empty-batch"], POISONED, EMPTY, violation_message())
    assert "a bug in the suite" in text and "IndexError" in text


def test_the_plugin_reports_an_empty_batch_violation_and_keeps_the_session():
    """The new user's command, on the zoo's empty-batch mutant: a failed test (exit 1),
    never an INTERNALERROR (exit 3) that loses every result."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "bn_invariants",
         "--bn-impl=bn_invariants.zoo.edge_cases:EmptyBatchPoisonsStatsBatchNorm",
         "--bn-device=cpu", "-k", "empty-batch"],
        cwd=root, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "running_mean[0]=nan" in done.stdout and "INTERNALERROR" not in done.stdout
