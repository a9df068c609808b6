"""Correct synchronised batch norms written as users write them (tests/fixtures/user_dist)
hold every distributed invariant, with W drawn in 2..4: one all-reducing through
torch.distributed.nn.functional.all_reduce's default group, one binding
``dist.group.WORLD`` at import, one taking only 4-D input, one declining momentum=None
and track_running_stats=False.  Run from another directory with ``--bn-dist-impl``,
each exits 0 and shows what it refuses and declines; in the suite's own checkout
``--bn-dist-impl`` collects only the distributed invariants.  Run as a script, this
module is the distributed soak (``python -m tests.test_dist_user_subjects N``)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from hypothesis import given

from bn_invariants.invariants import REGISTRY
from bn_invariants.invariants.distributed.pool import PoolError
from bn_invariants.invariants.distributed.probe import probe
from bn_invariants.invariants.distributed.subjects import dist_subject
from bn_invariants.invariants.runner import target_for
from bn_invariants.strategies.profiles import profile
from bn_invariants.targets import CheckedTarget
from tests.test_bn_impl import ROOT, run_pytest

FIXTURES = "tests.fixtures.user_dist"
FUNCTIONAL = f"{FIXTURES}.functional_all_reduce:SyncBatchNorm"
WORLD_AT_IMPORT = f"{FIXTURES}.world_at_import:SyncBatchNorm"
FOUR_D_ONLY = f"{FIXTURES}.restricted:FourDOnly"
NUMERIC_MOMENTUM = f"{FIXTURES}.restricted:NumericMomentum"
DISTRIBUTED = [i for i in REGISTRY.values() if i.kind == "distributed"]


def targets(spec: str) -> list:
    """The distributed tests' targets for ``spec``: its probed space, less what it declines."""
    subject = dist_subject(spec)
    probed = probe(subject)
    return [CheckedTarget(target_for(i, subject, probed.space), probed.capabilities)
            for i in DISTRIBUTED]


def search(target, examples: int, seen: list, name: str = "ci") -> None:
    """``examples`` examples of ``target`` under profile ``name`` (derandomized under
    ``ci``), each case appended to ``seen`` with its time (the first failure propagates)."""
    @profile(name, max_examples=examples)
    @given(case=target.cases())
    def run(case):
        start = time.monotonic()
        target.check(case)
        seen.append((target.invariant.id, case, time.monotonic() - start))

    run()


@pytest.mark.parametrize("spec", [FUNCTIONAL, WORLD_AT_IMPORT], ids=["functional", "world"])
def test_a_correct_subject_bound_at_import_holds_with_every_world_size(spec):
    seen = []
    for target in targets(spec):
        search(target, 6, seen)
    assert {len(case.sizes) for _, case, _ in seen} == {2, 3, 4}


def test_what_a_subject_refuses_or_declines_is_never_drawn():
    four_d = {len(c.problem.shape) for t in targets(FOUR_D_ONLY) for c in _drawn(t)}
    assert four_d == {4}, f"ranks drawn for FourDOnly={four_d}, but should be 4-D only"
    options = {(c.problem.options.momentum is None, c.problem.options.track_running_stats)
               for t in targets(NUMERIC_MOMENTUM) for c in _drawn(t)}
    assert options == {(False, True)}, f"(momentum None, tracked) drawn={options}"


def _drawn(target, n: int = 25) -> list:
    cases = []

    @profile("ci", max_examples=n)
    @given(case=target.cases())
    def draw(case):
        cases.append(case)

    draw()
    return cases


def _from_elsewhere(tmp_path, spec: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONWARNINGS"] = "ignore::FutureWarning"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--hypothesis-profile=ci", f"--bn-dist-impl={spec}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=env)


COVERAGE = {
    FUNCTIONAL: "float32: ranks 2,3,4,5; float64: ranks 2,3,4,5",
    WORLD_AT_IMPORT: "float32: ranks 2,3,4,5; float64: ranks 2,3,4,5",
    FOUR_D_ONLY: "float32: rank 4; float64: rank 4; refuses ranks 2, 3, 5 (ValueError: "
                 "expected 4D input (got 2D input))",
    NUMERIC_MOMENTUM: "float32: ranks 2,3,4,5; float64: ranks 2,3,4,5; declines momentum=None "
                      "(TypeError: unsupported operand type(s) for *: 'NoneType' and 'Tensor'); "
                      "track_running_stats=False (TypeError: unsupported operand type(s) for -: "
                      "'Tensor' and 'NoneType')",
}


@pytest.mark.parametrize("spec", list(COVERAGE), ids=lambda s: s.rpartition(".")[2])
def test_a_correct_subject_passes_from_another_directory(tmp_path, spec):
    result = _from_elsewhere(tmp_path, spec)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"  {spec}: {COVERAGE[spec]}\n" in result.stdout, result.stdout[:3000]
    assert f"{len(DISTRIBUTED)} passed" in result.stdout.splitlines()[-1]


def test_dist_impl_in_the_suites_checkout_collects_only_the_distributed_invariants():
    result = run_pytest("--collect-only", "-q", f"--bn-dist-impl={FUNCTIONAL}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    tests = [line for line in result.stdout.splitlines() if "::" in line]
    assert len(tests) == len(DISTRIBUTED), tests
    assert all(t.startswith("bn_invariants/distributed_tests.py::") for t in tests), tests


def test_a_soak_of_200_examples_has_no_timeout():
    assert soak(200, name="ci") == 0


def soak(examples: int, spec: str = FUNCTIONAL, name: str = "ci-seeded") -> int:
    """``examples`` examples of ``spec`` under profile ``name``, spread over the
    distributed invariants, one line each (invariant, W, slices, seconds); the number of
    pool errors (timeouts, hangs, raising ranks, crashes)."""
    seen, errors, per = [], 0, -(-examples // len(DISTRIBUTED))
    start = time.monotonic()
    for target in targets(spec):
        before = len(seen)
        try:
            search(target, per, seen, name)
        except PoolError as exc:
            errors += 1
            print(f"{target.invariant.id}: {type(exc).__name__}: {exc}", flush=True)
        for invariant, case, seconds in seen[before:]:
            print(f"{invariant} W={len(case.sizes)} slices={case.sizes} "
                  f"{case.problem.summary()}: {seconds:.3f} s", flush=True)
    worlds = sorted({len(c.sizes) for _, c, _ in seen})
    print(f"soak: {len(seen)} examples of {spec}, W in {worlds}, {errors} pool errors, "
          f"{time.monotonic() - start:.1f} s", flush=True)
    return errors


if __name__ == "__main__":
    sys.exit(1 if soak(int(sys.argv[1]) if len(sys.argv) > 1 else 200) else 0)
