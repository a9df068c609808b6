"""Causes and levels: the catalogue, the attribution of one counterexample, the defects, the
baseline; each test on a fixed counterexample, so it is fast and can fail."""
from __future__ import annotations

import json
import warnings

import pytest

from bn_invariants import zoo
from bn_invariants.attribution import attribute, behaviour
from bn_invariants.defects import (BEYOND_LEVEL, FAILING, KNOWN, Baseline, BaselineError, Finding,
                                   defects_of, fixed_since, levels_line, levels_of,
                                   load_baseline, status_of)
from bn_invariants.invariants import REGISTRY, InvariantViolation, load_subject
from bn_invariants.invariants.cases import Case
from bn_invariants.invariants.causes import CAUSES, LEVELS, fails_run
from bn_invariants.invariants.params import BiasOffset, Extreme, Scale
from bn_invariants.invariants.runner import check_case
from bn_invariants.strategies import BNOptions, Problem

ISSUE_IDS = ("detached-mean", "detached-variance", "naive-variance", "unbiased-normalisation",
             "low-precision-statistics", "eps-placement", "affine", "running-statistics",
             "eval-mode", "reduction-axes", "layout", "backward", "long-reduction",
             "extreme-range", "not-a-batch-norm", "unknown")
HANDWRITTEN = "tests.fixtures.handwritten:HandWrittenBatchNorm"


def test_the_catalogue_has_every_cause_id_users_are_promised():
    missing = [c for c in ISSUE_IDS if c not in CAUSES]
    assert not missing, f"cause ids missing from the catalogue={missing}"
    for cause in CAUSES.values():
        assert cause.level in LEVELS or cause.id == "unknown", (
            f"{cause.id}.level={cause.level!r}, but should be one of {LEVELS}")
        assert cause.summary.endswith(".") and cause.fix.endswith("."), cause.id


@pytest.mark.parametrize("mutant", zoo.MUTANTS, ids=lambda m: m.__name__)
def test_every_public_mutant_names_its_cause(mutant):
    assert mutant.CAUSE in CAUSES, f"{mutant.__name__}.CAUSE={mutant.CAUSE!r}, not a cause id"


def violation(invariant_id, spec, case):
    """The violation ``spec`` raises for ``case`` (the test fails if it keeps it)."""
    with pytest.raises(InvariantViolation) as info:
        check_case(REGISTRY[invariant_id], load_subject(spec), case)
    return info.value


def named(invariant_id, spec, case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        message = str(violation(invariant_id, spec, case))
        return attribute(REGISTRY[invariant_id], load_subject(spec), case, message)


BIAS_CASE = Case(problem=Problem(shape=(2, 1), cotangent_regime="informative"),
                 params=BiasOffset(bias=0.0))
MOMENTS_CASE = Case(problem=Problem(shape=(4, 3), seed=2))


def test_a_detached_mean_is_named_as_such_not_as_the_unbiased_variance():
    found = named("zero-bias-gradient", "tests.fixtures.handwritten:DetachedMeanHandWrittenBatchNorm",
                  BIAS_CASE)
    assert (found.cause, found.level) == ("detached-mean", "semantic"), found


def test_the_unbiased_variance_is_named_as_such_not_as_a_detached_mean():
    found = named("output-moments", "tests.fixtures.handwritten:UnbiasedHandWrittenBatchNorm",
                  MOMENTS_CASE)
    assert (found.cause, found.level) == ("unbiased-normalisation", "semantic"), found
    assert "UnbiasedNormalisationBatchNorm" in found.evidence, found.evidence


def test_half_precision_statistics_are_a_precision_defect():
    case = Case(problem=Problem(shape=(2, 4), dtype="float16", cotangent_regime="informative"))
    found = named("half-precision-ulp", HANDWRITTEN, case)
    assert (found.cause, found.level) == ("low-precision-statistics", "precision"), found


def test_an_overflow_only_at_extreme_magnitudes_is_a_range_defect():
    case = Case(problem=Problem(shape=(2, 1), cotangent_regime="informative"),
                params=Extreme(position=0.75, spread=0))  # |x| near 2^63 in float32
    found = named("extreme-magnitudes", HANDWRITTEN, case)
    assert (found.cause, found.level) == ("extreme-range", "range"), found


def test_a_correct_batch_norm_behaves_like_the_zoos_control():
    problem = Problem(shape=(4, 3), seed=1)
    mine = behaviour(load_subject(HANDWRITTEN), problem)
    control = behaviour(load_subject(zoo.spec(zoo.ZooBatchNorm)), problem)
    for name, value in control.items():
        if value is not None:
            assert (mine[name] - value).abs().max() < 1e-5, f"{name} differs from the control"


def test_nothing_explains_a_failure_the_zoo_does_not_hold():
    """A violation no mutant or probe reproduces is 'unknown', at the level its dtype gives."""
    found = attribute(REGISTRY["output-moments"], load_subject(HANDWRITTEN), MOMENTS_CASE,
                      "var(y) per channel[0]=0.5, but should be 1.0 ± 0.01")
    assert (found.cause, found.level) == ("unknown", "semantic"), found


def finding(invariant="output-moments", cause="unbiased-normalisation", level="semantic",
            dtype="float32", status=FAILING, size=12):
    return Finding(invariant, "cpu", dtype, cause, level, "evidence", "message", size,
                   "bn-invariants replay ...", status)


def test_defects_group_by_cause_most_serious_first():
    findings = [finding("half-precision-ulp", "low-precision-statistics", "precision", "float16"),
                finding("extreme-magnitudes", "extreme-range", "range"),
                finding("output-moments"), finding("eps-honoured", size=4),
                finding("zero-bias-gradient", "low-precision-statistics", "precision", "bfloat16")]
    defects = defects_of(findings)
    assert [d.cause for d in defects] == ["unbiased-normalisation", "low-precision-statistics",
                                          "extreme-range"]
    assert defects[0].invariants == ["eps-honoured", "output-moments"]
    assert defects[0].example.invariant == "eps-honoured", "the smallest counterexample is shown"
    assert defects[1].dtypes == ["bfloat16", "float16"]
    assert levels_of(defects) == {"semantic": "fails", "precision": "fails", "range": "fails"}
    assert levels_line(defects[1:]) == ("semantic: holds; precision: fails in bfloat16, float16 "
                                        "(low-precision-statistics); range: fails (extreme-range)")
    assert all(len(d.block()) <= 13 for d in defects), [len(d.block()) for d in defects]


def test_a_level_fails_the_run_up_to_the_threshold():
    assert [fails_run(level, "precision") for level in LEVELS] == [True, True, False]
    none, mine = Baseline(), finding()
    assert status_of(finding(level="range"), "precision", none) == BEYOND_LEVEL
    assert status_of(mine, "precision", Baseline(frozenset({mine.key}))) == KNOWN
    assert status_of(mine, "semantic", none) == FAILING
    same_defect = Baseline(frozenset(), frozenset({finding("eps-honoured").defect_key}))
    assert status_of(mine, "semantic", same_defect) == KNOWN, "the defect is known already"


def test_a_report_is_a_baseline(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"results": [
        {"invariant": "output-moments", "device": "cpu", "dtype": "float16", "violated": True,
         "cause": "unknown"},
        {"invariant": "shift-invariance", "device": "cpu", "outcome": "pass"}]}))
    known = load_baseline(path)
    assert known.violations == {("output-moments", "cpu", "float16")}
    assert known.defects == {("unknown", "cpu", "float16")}
    assert fixed_since(known, [], {("output-moments", "cpu")}) == [("output-moments", "cpu", "float16")]
    assert fixed_since(known, [finding(dtype="float16")], {("output-moments", "cpu")}) == []
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(BaselineError, match="not a bn-invariants report"):
        load_baseline(tmp_path / "bad.json")
    with pytest.raises(BaselineError, match="cannot be read"):
        load_baseline(tmp_path / "missing.json")


def test_options_are_kept_in_a_case():
    """The attribution replays the counterexample's options (eps here) on the zoo."""
    case = Case(problem=Problem(shape=(2, 1), options=BNOptions(eps=0.1),
                                cotangent_regime="informative"), params=Scale(scale=0.25))
    found = named("eps-honoured", "bn_invariants.zoo.numerics:EpsOutsideSqrtBatchNorm", case)
    assert found.cause == "eps-placement", found
