"""Each known deviation of torch's batch norm, replayed from its minimal counterexample.

Strict on the torch versions it was measured on: the day torch fixes one, this test fails
and the entry must go.  On another torch version the replay is a non-strict xfail whose
reason says "recorded for torch X, not verified on torch Y": XFAIL (still there) and XPASS
(gone) are both reported, neither fails the run.
"""
import subprocess
import sys

import pytest
import torch

from bn_invariants.strategies.profiles import profile
from bn_invariants.invariants import REGISTRY, InvariantViolation
from bn_invariants.invariants.deviations import torch_minor
from bn_invariants.invariants.known_deviations import DEVIATIONS
from bn_invariants.invariants.coverage import probe
from bn_invariants.invariants.runner import check_case
from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS

CPU_SPACES = {subject.name: probe(subject, "cpu") for subject in BUILTIN_SUBJECTS}


def _takes(subject, problem) -> bool:
    """Whether ``subject`` accepts the counterexample's dtype and rank (on the CPU, where
    the ranks a module takes are the same as on any device)."""
    return len(problem.shape) in CPU_SPACES[subject.name].dtype_ranks.get(problem.dtype, ())


def replay_mark(dev, torch_version: str = torch.__version__):
    """The xfail mark of ``dev``'s replay: strict on a torch version it was measured on."""
    if dev.verified_on(torch_version):
        return pytest.mark.xfail(strict=True, raises=InvariantViolation, reason=dev.explanation)
    return pytest.mark.xfail(
        strict=False, raises=InvariantViolation,
        reason=(f"recorded for torch {', '.join(dev.measured_on)}, not verified on torch "
                f"{torch_minor(torch_version)}: {dev.explanation}"))


CASES = [
    pytest.param(dev, subject, id=f"{dev.invariant.id}-{subject.name}-{dev.device}",
                 marks=[replay_mark(dev)]
                 + ([] if dev.device == "cpu" or torch.cuda.is_available() else
                    [pytest.mark.skip(reason=f"{dev.device} is not available on this machine")]))
    for dev in DEVIATIONS
    for subject in BUILTIN_SUBJECTS
    if subject.factory in dev.factories and _takes(subject, dev.counterexample.problem)
]


@pytest.mark.parametrize("deviation, subject", CASES)
def test_known_deviation(deviation, subject):
    if deviation.device_fault:
        replay_in_fresh_process(deviation, subject)
    else:
        check_case(deviation.invariant, subject, deviation.counterexample)


FAULT_REPLAY_TIMEOUT_S = 120
"""How long a device-fault replay may take in its own process (start-up included)."""

FAULT_REPLAY = """
import sys
from bn_invariants.invariants import *
from bn_invariants.invariants.assertions import is_device_fault
from bn_invariants.invariants.runner import check_case
from bn_invariants.strategies import *
import torch
try:
    subject = next(s for s in BUILTIN_SUBJECTS if s.name == sys.argv[2])
    check_case(REGISTRY[sys.argv[1]], subject, eval(sys.argv[3]))
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # a kernel's fault surfaces here
except Exception as exc:
    if is_device_fault(exc):
        print("DEVICE FAULT:", str(exc).splitlines()[0])
        sys.exit(3)
    raise
"""


def replay_in_fresh_process(deviation, subject) -> None:
    """Replay a device-fault deviation in a fresh Python process (a fault would poison this
    one's device context): InvariantViolation when it faults there, AssertionError when it
    fails in any other way or outlives FAULT_REPLAY_TIMEOUT_S, nothing when it passes."""
    args = [sys.executable, "-c", FAULT_REPLAY, deviation.invariant.id, subject.name,
            repr(deviation.counterexample)]
    try:
        done = subprocess.run(args, capture_output=True, text=True,
                              timeout=FAULT_REPLAY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"replay of {deviation.invariant.id} on {subject.name} ran past "
                             f"{FAULT_REPLAY_TIMEOUT_S} s") from None
    if done.returncode == 3:
        raise InvariantViolation(f"{subject.name}: {done.stdout.strip()}")
    assert done.returncode == 0, f"replay failed otherwise:\n{done.stdout}{done.stderr[-2000:]}"


REGIONAL = [dev for dev in DEVIATIONS if dev.region is not None]


@pytest.mark.parametrize("deviation", REGIONAL, ids=[
    f"{d.invariant.id}-{d.factories[0].__name__}" for d in REGIONAL])
def test_a_regional_counterexample_lies_in_its_region(deviation):
    assert deviation.contains(deviation.counterexample.problem)
    assert deviation.region_text


def test_a_region_is_left_out_of_the_search_and_the_rest_of_its_dtype_is_not():
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    from bn_invariants.invariants.runner import target_for
    subject = next(s for s in BUILTIN_SUBJECTS if s.name == "torch.nn.functional.batch_norm")
    space = CPU_SPACES[subject.name].restrict(dtypes=("float16",))
    target = target_for(REGISTRY["input-gradient-closed-form"], subject, space)
    assert target.excluded and target.space.dtype_ranks  # float16 kept, a region excluded
    quick = profile("ci", max_examples=300)
    found = find(target.cases(), lambda case: case.problem.layout == "offset", settings=quick)
    assert found.problem.dtype == "float16"
    with pytest.raises(NoSuchExample):
        find(target.cases(), lambda case: case.problem.layout in ("strided", "channels_last"),
             settings=quick)


def test_a_deviation_is_strict_only_on_the_torch_versions_it_was_measured_on():
    dev = DEVIATIONS[0]
    assert dev.measured_on == ("2.13", "2.14")
    assert dev.verified_on("2.13.0+cpu") and dev.verified_on("2.14.1")
    assert not dev.verified_on("2.15.0") and not dev.verified_on("2.1.3")
    assert replay_mark(dev, "2.13.0").kwargs["strict"] is True
    later = replay_mark(dev, "2.15.0+cu124")
    assert later.kwargs["strict"] is False
    assert later.kwargs["reason"].startswith("recorded for torch 2.13, 2.14, not verified on "
                                             "torch 2.15:")


def test_every_deviation_names_the_torch_versions_it_was_measured_on():
    for dev in DEVIATIONS:
        assert dev.measured_on and all(v.count(".") == 1 for v in dev.measured_on), dev


def test_cuda_replays_run_only_where_cuda_is():
    cuda = [p for p in CASES if p.values[0].device == "cuda"]
    assert cuda, "no CUDA deviation is replayed"
    for param in cuda:
        skips = [m for m in param.marks if m.name == "skip"]
        if torch.cuda.is_available():
            assert not skips, param.id
        else:
            assert skips and "cuda is not available" in skips[0].kwargs["reason"], param.id


def test_a_device_fault_replay_runs_in_a_fresh_process_and_fails_only_on_a_fault():
    import dataclasses

    from bn_invariants.invariants.known_deviations import CUDA_MISALIGNED_HALF
    subject = next(s for s in BUILTIN_SUBJECTS if s.name == "torch.nn.BatchNorm1d")
    on_cpu = dataclasses.replace(CUDA_MISALIGNED_HALF, counterexample=dataclasses.replace(
        CUDA_MISALIGNED_HALF.counterexample, problem=dataclasses.replace(
            CUDA_MISALIGNED_HALF.counterexample.problem, device="cpu")))
    replay_in_fresh_process(on_cpu, subject)  # no fault on the CPU: it passes, nothing raised
    assert CUDA_MISALIGNED_HALF.device_fault
    assert [p.values[0] for p in CASES if p.values[0].device_fault]


def test_a_device_fault_region_is_left_out_of_every_invariant_on_its_device_only():
    from bn_invariants.invariants.known_deviations import (CUDA_MISALIGNED_HALF,
                                                          regional_deviations)
    subject = next(s for s in BUILTIN_SUBJECTS if s.name == "torch.nn.BatchNorm2d")
    for invariant_id in REGISTRY:
        assert CUDA_MISALIGNED_HALF in regional_deviations(invariant_id, subject, "cuda")
        assert CUDA_MISALIGNED_HALF not in regional_deviations(invariant_id, subject, "cpu")
