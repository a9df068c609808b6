"""The paper's scenario: the naive rule is caught, and drifts exactly as section 2 says."""
import pytest
import torch

from bn_invariants.strategies.profiles import profile
from bn_invariants.invariants import REGISTRY, InvariantViolation
from bn_invariants.invariants.catalogue.drift import bias_descent
from bn_invariants.invariants.coverage import probe
from bn_invariants.zoo.detached_mean import DetachedMeanBatchNorm, DetachedStatisticsBatchNorm
from bn_invariants.invariants.runner import find_violation, target_for
from bn_invariants.invariants.subjects import REFERENCE_SUBJECT, Subject
from bn_invariants.strategies import BNOptions, Problem

SEARCH = profile("ci")
NAIVE = [Subject("naive-centering", DetachedMeanBatchNorm),
         Subject("naive-scaling", DetachedStatisticsBatchNorm)]


def _search(invariant_id, subject):
    return find_violation(target_for(REGISTRY[invariant_id], subject, probe(subject, "cpu")),
                          SEARCH)


@pytest.mark.parametrize("subject", NAIVE, ids=str)
@pytest.mark.parametrize("invariant_id", ["zero-bias-gradient", "no-bias-drift"])
def test_naive_rule_is_caught_with_a_small_counterexample(invariant_id, subject):
    violation = _search(invariant_id, subject)
    assert isinstance(violation, InvariantViolation), f"{subject} was not caught: {violation!r}"
    assert "(2, 1) float32" in str(violation), f"did not shrink: {violation}"


@pytest.mark.parametrize("subject", NAIVE, ids=str)
def test_naive_rule_has_a_correct_forward_pass(subject):
    assert _search("shift-invariance", subject) is None


PROBLEM = Problem(shape=(8, 3, 2, 2), dtype="float64", regime="offset", severity=0.5, seed=5,
                  options=BNOptions(momentum=None))


def test_naive_bias_drifts_linearly_while_the_loss_stays_fixed():
    steps = 6
    path = bias_descent(NAIVE[0], PROBLEM, steps=steps, lr=1.0)
    step = path.bias[1] - path.bias[0]
    assert (step.abs() > 1e-3).all(), "the naive step must be non-zero"
    expected = path.bias[0] + torch.arange(steps + 1, dtype=torch.float64)[:, None] * step
    torch.testing.assert_close(path.bias, expected, rtol=0, atol=1e-9 * step.abs().max().item())
    torch.testing.assert_close(path.loss, path.loss[0].expand_as(path.loss), rtol=1e-12, atol=1e-9)


def test_proper_bias_does_not_move():
    path = bias_descent(REFERENCE_SUBJECT, PROBLEM, steps=6, lr=1.0)
    assert (path.bias - path.bias[0]).abs().max().item() < 1e-9
    assert (path.loss - path.loss[0]).abs().max().item() < 1e-9
