"""The suite catches the zoo: each deliberately broken batch norm fails the invariants it
declares in CAUGHT_BY, and the correct control it is written against passes them.

Runs the ``ci`` profile's search (derandomized, 30 examples, no shrinking) on the
CPU.  The committed kill matrix (docs/data/kill_matrix.json, written by
``python3 -m tools.kill_matrix``) must name every mutant and every registered
invariant, so it cannot silently go stale.
"""
from __future__ import annotations

import inspect
import json

import pytest
from torch import nn

from bn_invariants.invariants import REGISTRY, InvariantViolation
from bn_invariants.invariants.coverage import probe
from bn_invariants.invariants.runner import find_violation, target_for
from bn_invariants.invariants.subjects import Subject
from bn_invariants import zoo
from tools.kill_matrix import JSON_PATH, search_settings


def subject_of(cls) -> Subject:
    """A zoo class as the suite sees it under --bn-impl."""
    return Subject(zoo.spec(cls), cls)


def control_of(mutant):
    """The correct implementation a mutant differs from by its one bug."""
    return next(c for c in reversed(zoo.CONTROLS) if issubclass(mutant, c))


def search(cls, invariant_id: str):
    """find_violation of one invariant against a zoo class, ci search, on the CPU."""
    subject = subject_of(cls)
    target = target_for(REGISTRY[invariant_id], subject, probe(subject, "cpu"))
    assert target.space, (f"{invariant_id} applies to no input {cls.__name__} accepts, so it "
                          f"cannot catch anything: pick another CAUGHT_BY")
    return find_violation(target, search_settings())


BATCHNORM2D_SIGNATURE = {"num_features": inspect.Parameter.empty, "eps": 1e-5, "momentum": 0.1,
                         "affine": True, "track_running_stats": True, "device": None,
                         "dtype": None}
"""The constructor every subject shares (torch 2.13's BatchNorm2d adds keywords after these)."""

CAUGHT = [pytest.param(m, i, id=f"{m.__name__}-{i}") for m in zoo.MUTANTS for i in m.CAUGHT_BY]
CONTROLLED = sorted({(control_of(m), i) for m in zoo.MUTANTS for i in m.CAUGHT_BY},
                    key=lambda pair: (pair[0].__name__, pair[1]))


@pytest.mark.parametrize("mutant", zoo.MUTANTS, ids=lambda m: m.__name__)
def test_mutant_is_declared(mutant):
    assert mutant.BUG and mutant.SOURCE and mutant.__doc__, \
        f"{mutant.__name__} should say its bug, where it is reported and how it goes wrong"
    assert 1 <= len(mutant.CAUGHT_BY) <= 3, \
        f"{mutant.__name__}.CAUGHT_BY={mutant.CAUGHT_BY}, but should name 1 to 3 invariants"
    unknown = [i for i in mutant.CAUGHT_BY if i not in REGISTRY]
    assert not unknown, f"{mutant.__name__}.CAUGHT_BY names unregistered invariants {unknown}"
    got = {name: p.default for name, p in inspect.signature(mutant).parameters.items()}
    assert got == BATCHNORM2D_SIGNATURE, \
        f"{mutant.__name__} takes {got}, but should take BatchNorm2d's {BATCHNORM2D_SIGNATURE}"
    torch_names = list(inspect.signature(nn.BatchNorm2d).parameters)
    assert torch_names[:len(got)] == list(got), f"torch.nn.BatchNorm2d now takes {torch_names}"


def assert_caught(error, mutant, invariant_id: str) -> None:
    """What find_violation returned for ``mutant`` is an InvariantViolation."""
    __tracebackhide__ = True
    assert isinstance(error, InvariantViolation), (
        f"{invariant_id} on {mutant.__name__} ({mutant.BUG}) found "
        f"{'nothing' if error is None else repr(error)[:300]}, but should find an "
        f"InvariantViolation")


@pytest.mark.parametrize("mutant, invariant_id", CAUGHT)
def test_mutant_is_caught(mutant, invariant_id):
    assert_caught(search(mutant, invariant_id), mutant, invariant_id)


@pytest.mark.parametrize("control, invariant_id", CONTROLLED,
                         ids=[f"{c.__name__}-{i}" for c, i in CONTROLLED])
def test_control_passes(control, invariant_id):
    error = search(control, invariant_id)
    assert error is None, f"{invariant_id} on the control {control.__name__} found {error!r}"


def test_detached_mean_is_where_the_readme_says():
    from bn_invariants.zoo.detached_mean import DetachedMeanBatchNorm
    assert zoo.spec(DetachedMeanBatchNorm) == "bn_invariants.zoo.detached_mean:DetachedMeanBatchNorm"
    assert DetachedMeanBatchNorm in zoo.MUTANTS


def test_kill_matrix_is_current():
    rerun = "rerun `python3 -m tools.kill_matrix` and commit docs/data/kill_matrix.json"
    assert JSON_PATH.exists(), f"{JSON_PATH} is missing: {rerun}"
    doc = json.loads(JSON_PATH.read_text())
    assert set(doc) == {"profile", "max_examples", "torch", "mutants", "matrix", "only_caught_by"}
    names = {c.__name__ for c in zoo.CONTROLS + zoo.MUTANTS}
    missing = sorted(names - set(doc["matrix"]))
    assert not missing, f"the kill matrix lacks mutants {missing}: {rerun}"
    for name in names:
        absent = sorted(set(REGISTRY) - set(doc["matrix"][name]))
        assert not absent, f"the kill matrix's {name} row lacks invariants {absent}: {rerun}"
        gone = sorted(set(doc["matrix"][name]) - set(REGISTRY))
        assert not gone, f"the kill matrix names unregistered invariants {gone}: {rerun}"
    for control in zoo.CONTROLS:
        failed = [i for i, v in doc["matrix"][control.__name__].items() if v == "caught"]
        assert not failed, f"the control {control.__name__} fails {failed} in the kill matrix"
    for mutant in zoo.MUTANTS:
        row = doc["matrix"][mutant.__name__]
        uncaught = [i for i in mutant.CAUGHT_BY if row.get(i) != "caught"]
        assert not uncaught, (f"{mutant.__name__}.CAUGHT_BY names {uncaught}, which the kill "
                              f"matrix records as not catching it")


def test_every_invariant_without_a_unique_mutant_says_why_it_is_kept():
    import json

    from bn_invariants.invariants import REGISTRY
    from tools.kill_matrix import JSON_PATH
    from tools.worth import WORTH

    unique = json.loads(JSON_PATH.read_text())["only_caught_by"]
    missing = [i for i in REGISTRY if i not in unique and not WORTH.get(i)]
    assert not missing, f"invariants without a unique mutant or a reason={missing}, but should be []"
    assert not set(WORTH) - set(REGISTRY), "WORTH names invariants that are not registered"
