"""mixed-precision: half-precision input through float32 parameters, on the CPU.

torch's own batch norms pass (channels-last included); a batch norm that returns
the promoted dtype, downcasts its parameters or accumulates in half precision
fails; one that refuses mixed input declines; torch's bfloat16 deviation is what
its entry says it is.
"""
import dataclasses

import pytest
import torch
from hypothesis import HealthCheck
from torch import nn

from bn_invariants.strategies.profiles import profile
from bn_invariants.invariants import REGISTRY, Case, InvariantViolation, Space, Unsupported
from bn_invariants.invariants.coverage import probe
from bn_invariants.invariants.known_deviations import DEVIATIONS
from bn_invariants.invariants.runner import check_case, find_violation, target_for
from bn_invariants.invariants.subjects import Subject
from bn_invariants.strategies import BNOptions, Problem
from bn_invariants.zoo import DowncastParametersBatchNorm, HalfStatisticsBatchNorm, ZooBatchNorm


def check(subject, case):
    """The mixed-precision check of ``case``."""
    check_case(REGISTRY["mixed-precision"], subject, case)

TORCH_2D = Subject("torch.nn.BatchNorm2d", nn.BatchNorm2d)
SEARCH = profile("ci", suppress_health_check=list(HealthCheck))


def search(cls):
    """find_violation of mixed-precision against ``cls`` on the CPU."""
    subject = Subject(cls.__name__, cls)
    return find_violation(target_for(REGISTRY["mixed-precision"], subject,
                                     probe(subject, "cpu")), SEARCH)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("options", [BNOptions(), BNOptions(affine=False, momentum=None),
                                     BNOptions(track_running_stats=False, eps=1e-3)])
def test_torch_passes_channels_last_with_float32_parameters(dtype, options):
    # contiguous storage: bfloat16 in channels-last is the known deviation below
    layout = "channels_last" if dtype == "float16" else "contiguous"
    check(TORCH_2D, Case(Problem(shape=(4, 3, 5, 5), dtype=dtype, layout=layout,
                                 regime="offset", severity=0.5, seed=7, options=options)))


def test_the_zoo_control_passes():
    assert search(ZooBatchNorm) is None


def test_downcast_parameters_are_caught():
    # γ and β rounded to half move the output; the cast's backward rounds dβ and dγ too
    error = search(DowncastParametersBatchNorm)
    assert isinstance(error, InvariantViolation), error
    assert str(error).split("[")[0] in ("BN(x)", "dl/dbeta", "dl/dgamma"), error


def test_half_precision_statistics_are_caught():
    error = search(HalfStatisticsBatchNorm)
    assert isinstance(error, InvariantViolation), error


class PromotedOutput(ZooBatchNorm):
    """Returns the promoted dtype of input and parameters (float32 for half input)."""

    def forward(self, x):
        y = super().forward(x)
        return y if self.weight is None else y.to(torch.result_type(x, self.weight))


def test_a_promoted_output_dtype_is_reported():
    problem = Problem(shape=(4, 3), dtype="float16")
    with pytest.raises(InvariantViolation,
                       match=r"^output\.dtype=torch\.float32, but should be torch\.float16 "):
        check(Subject("promoted", PromotedOutput), Case(problem))


class DowncastBuffers(ZooBatchNorm):
    """Keeps its running statistics in the input's dtype once it sees half input."""

    def forward(self, x):
        if self.running_mean is not None:
            self.running_mean.data = self.running_mean.data.to(x.dtype)
            self.running_var.data = self.running_var.data.to(x.dtype)
        return super().forward(x)


def test_buffers_downcast_to_the_input_dtype_are_reported():
    with pytest.raises(InvariantViolation, match=r"^running_mean\.dtype=torch\.bfloat16, but "
                                                 r"should be torch\.float32 "):
        check(Subject("downcast buffers", DowncastBuffers),
              Case(Problem(shape=(4, 3), dtype="bfloat16")))


class SameDtypeOnly(ZooBatchNorm):
    def forward(self, x):
        if self.weight is not None and x.dtype != self.weight.dtype:
            raise TypeError(f"expected {self.weight.dtype} input, got {x.dtype}")
        return super().forward(x)


def test_a_subject_refusing_mixed_input_declines():
    with pytest.raises(Unsupported, match="expected torch.float32 input, got torch.float16"):
        check(Subject("same dtype only", SameDtypeOnly),
              Case(Problem(shape=(4, 3), dtype="float16")))


class _FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("expected scalar type Float but found Half")


class BackwardRefusesMixed(ZooBatchNorm):
    def forward(self, x):
        return _FailingBackward.apply(super().forward(x))


def test_a_backward_failing_after_an_accepted_forward_is_a_violation():
    with pytest.raises(InvariantViolation, match="the backward pass raised RuntimeError"):
        check(Subject("backward refuses", BackwardRefusesMixed),
              Case(Problem(shape=(4, 3), dtype="float16")))


def test_it_applies_to_half_types_only():
    every = Space("cpu", {d: (2, 3, 4, 5) for d in ("float32", "float64", "float16", "bfloat16")})
    assert set(REGISTRY["mixed-precision"].space_for(every).dtype_ranks) == {"float16", "bfloat16"}


BFLOAT16 = [d for d in DEVIATIONS if d.invariant.id == "mixed-precision" and d.dtypes == ("bfloat16",)
            and d.device == "cpu"]  # CUDA's bfloat16 deviation is another (docs/gpu.md)


@pytest.mark.parametrize("deviation", BFLOAT16, ids=lambda d: d.factories[0].__name__)
def test_the_bfloat16_deviation_is_a_rounded_bias_gradient(deviation):
    problem = deviation.counterexample.problem
    subject = Subject(deviation.factories[0].__name__, deviation.factories[0])
    with pytest.raises(InvariantViolation, match=r"^dl/dbeta\[") as info:
        check(subject, deviation.counterexample)
    got = float(str(info.value).split("]=")[1].split(",")[0])
    assert torch.tensor(got).to(torch.bfloat16).item() == got, "dl/dbeta is not a bfloat16 number"
    check(subject, Case(dataclasses.replace(problem, layout="contiguous")))


def test_a_gradient_past_the_half_range_may_round_to_inf():
    """Found by a new user's search: the exact dl/dx (67933 +- 2110) lies past float16's
    largest value (65504), so inf is that gradient rounded, not a violation."""
    case = Case(problem=Problem(
        shape=(100000, 1), dtype="float16", device="cpu", layout="contiguous",
        regime="tiny_variance", severity=0.0, seed=190,
        options=BNOptions(eps=1e-07, momentum=0.1, affine=True, track_running_stats=True),
        cotangent_regime="heavy_tailed"))
    check(Subject("zoo", ZooBatchNorm), case)
    check(Subject("torch.nn.BatchNorm1d", nn.BatchNorm1d), case)
