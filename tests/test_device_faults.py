"""A device fault (a CUDA error) is never a subject's answer.

On the first CUDA run a misaligned-address fault poisoned one pytest worker: every later
CUDA call there failed with it, the mixed-precision test took it for torch declining
float16 input (a skip) and the float64 reference "failed" mixed-precision.  The handling
is device-independent, so it is checked here on the CPU with a subject that raises the
fault torch raises (torch.AcceleratorError, "CUDA error: ...").
"""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from bn_invariants.invariants import REGISTRY, Extreme, runner
from bn_invariants.invariants.assertions import is_device_fault
from bn_invariants.invariants.catalogue.mixed_precision import mixed_step
from bn_invariants.invariants.coverage import probe
from bn_invariants.invariants.reference import BatchNormModule
from bn_invariants.invariants.cases import Case
from bn_invariants.invariants.runner import DevicePoisoned, Target, refuse_poisoned_device
from bn_invariants.invariants.subjects import Subject
from bn_invariants.strategies import BNOptions, Problem

FAULT = "CUDA error: misaligned address"


def _fault():
    return getattr(torch, "AcceleratorError", RuntimeError)(FAULT)


class FaultingBatchNorm(BatchNormModule):
    """Builds like BatchNorm2d; its forward meets a device fault."""

    def forward(self, x):
        raise _fault()


def _faulting_factory(*args, **kwargs):
    raise _fault()


FAULTING = Subject("faulting", FaultingBatchNorm)


def test_a_cuda_error_is_a_device_fault_and_a_refusal_is_not():
    assert is_device_fault(_fault()) and is_device_fault(RuntimeError(FAULT))
    assert not is_device_fault(RuntimeError("expected 4D input (got 2D input)"))
    assert not is_device_fault(ValueError(FAULT))


def test_mixed_precision_does_not_take_a_fault_for_declining_half_input():
    problem = Problem(shape=(2, 1), dtype="float16", options=BNOptions())
    with pytest.raises(type(_fault()), match="misaligned"):
        mixed_step(FAULTING, problem)


def test_a_fault_while_building_is_not_the_factorys_error():
    with pytest.raises(type(_fault()), match="misaligned"):
        Subject("faulting", _faulting_factory).build(
            1, options=BNOptions(), device="cpu", dtype=torch.float32)


def test_extreme_magnitudes_does_not_accept_a_fault_as_a_clear_error():
    case = Case(Problem(shape=(2, 1)), params=Extreme(position=0.75, spread=0))
    with pytest.raises(type(_fault()), match="misaligned"):
        runner.check_case(REGISTRY["extreme-magnitudes"], FAULTING, case)


def test_the_coverage_probe_does_not_take_a_fault_for_a_refused_rank():
    with pytest.raises(type(_fault()), match="misaligned"):
        probe(FAULTING, "cpu")


def test_the_first_fault_is_remembered_and_later_device_cases_are_refused(monkeypatch):
    monkeypatch.setattr(runner, "FIRST_DEVICE_FAULT", [])
    space = probe(Subject("torch.nn.BatchNorm1d", torch.nn.BatchNorm1d), "cpu")
    target = Target(REGISTRY["input-gradient-sums-to-zero"], FAULTING, space)

    @settings(max_examples=1, database=None, deadline=None)
    @given(st.just(Case(Problem(shape=(2, 1)))))
    def check(case):
        target.check(case)

    with pytest.raises(type(_fault())):
        check()
    assert runner.FIRST_DEVICE_FAULT[0].startswith("input-gradient-sums-to-zero-faulting-cpu on Case(")
    refuse_poisoned_device("cpu")  # the CPU is not poisoned by a device fault
    with pytest.raises(DevicePoisoned, match="since a device fault in input-gradient-sums-to-zero"):
        refuse_poisoned_device("cuda")
