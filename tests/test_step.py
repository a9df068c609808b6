"""The step harness: one training step, recorded, with the autograd checks worded once."""
import pytest
import torch

from bn_invariants.invariants import InvariantViolation
from bn_invariants.invariants.reference import closed_form, statistics
from bn_invariants.invariants.step import build, record_step, rounded_cotangent, training_step
from bn_invariants.invariants.subjects import REFERENCE_SUBJECT, BUILTIN_SUBJECTS
from bn_invariants.strategies import Problem

TORCH_1D = next(s for s in BUILTIN_SUBJECTS if s.name == "torch.nn.BatchNorm1d")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_steps_on_one_problem_do_not_share_a_gradient(dtype):
    """float64 CPU values are their own .to(float64): each step needs its own leaf, or the
    second step's dl/dx holds both (differential-agreement compared 2g with g)."""
    p = Problem(shape=(6, 2), dtype=dtype, seed=3)
    g = rounded_cotangent(p)
    first, second = training_step(TORCH_1D, p, g), training_step(REFERENCE_SUBJECT, p, g)
    exact = closed_form(statistics(p.values, p.options.eps), g,
                        torch.as_tensor(p.affine()[0]).double().reshape(1, -1))
    for step in (first, second):
        torch.testing.assert_close(step.input_grad, exact, rtol=1e-4, atol=1e-5)
    assert not p.values.requires_grad


class Detached(torch.nn.Module):
    """Returns its input detached: the output leaves the graph."""

    def forward(self, x):
        return x.detach()


def test_an_output_outside_the_graph_is_a_violation():
    p = Problem(shape=(4, 2), dtype="float32", seed=0)
    with pytest.raises(InvariantViolation, match=r"BN\(x\)\.requires_grad=False, but should be True"):
        record_step(Detached(), "detached", p)


def test_a_step_records_buffers_and_parameters():
    p = Problem(shape=(4, 3), dtype="float32", seed=1)
    step = record_step(build(TORCH_1D, p), TORCH_1D, p)
    assert step.batches == 1 and step.running_mean.shape == (3,)
    assert step.gamma.shape == (1, 3) and step.finite
