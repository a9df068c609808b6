"""The Python API and the command line: one readable verdict, exit codes as pytest's."""
from __future__ import annotations

import json

import pytest
from hypothesis import settings

from bn_invariants import check_batch_norm
from bn_invariants.cli import main
from bn_invariants.zoo import DetachedMeanBatchNorm, ZooBatchNorm

FAST = ["shift-invariance", "zero-bias-gradient"]
CI = settings.get_profile("ci")


def test_a_correct_batch_norm_gets_a_report_of_passes():
    report = check_batch_norm(ZooBatchNorm, devices=["cpu"], invariants=FAST, settings=CI)
    assert report.ok and [r.verdict for r in report.results] == ["pass", "pass"]
    assert report.subject == "bn_invariants.zoo.base:ZooBatchNorm"
    assert all(0 <= r.worst_ratio <= 1 for r in report.results), report.results
    assert len(report.registry) == 12 and report.version


def test_a_violation_raises_one_assertion_error_with_its_reproduction():
    with pytest.raises(AssertionError) as info:
        check_batch_norm(DetachedMeanBatchNorm, devices=["cpu"], invariants=FAST, settings="ci")
    text = str(info.value)
    assert text.startswith("1 invariant(s) violated by bn_invariants.zoo.detached_mean:"), text
    assert "- zero-bias-gradient on cpu: [detached-mean, semantic] dl/db[0]=" in text
    assert "1. detached-mean (semantic)" in text and "fix: Keep the mean" in text
    assert "reproduce: Case(problem=Problem(shape=(2, 1), dtype='float32'" in text


def test_the_report_can_be_kept_instead_of_raised():
    report = check_batch_norm(DetachedMeanBatchNorm, devices=["cpu"], invariants=FAST,
                              settings=CI, raise_on_failure=False)
    failed = report.failures
    assert [r.invariant for r in failed] == ["zero-bias-gradient"] and failed[0].worst_ratio > 1
    assert f"{failed[0].worst_ratio:.3g}× the tolerance" in failed[0].message, (
        "a failure's ratio should be its shrunk counterexample's, as its message says")
    assert report.to_json()["summary"] == {"pass": 1, "fail": 1, "skip": 0, "xfail": 0}


def test_by_default_every_single_process_invariant_is_checked_and_no_distributed_one():
    from bn_invariants.api import _invariants
    from bn_invariants.invariants import REGISTRY
    chosen = _invariants(None, REGISTRY)
    assert {i.id for i in chosen} == {i.id for i in REGISTRY.values() if i.kind == "single"}
    distributed = next(i.id for i in REGISTRY.values() if i.kind != "single")
    with pytest.raises(ValueError, match="is a distributed one"):
        _invariants([distributed], REGISTRY)


def test_several_distinct_failures_keep_a_reproduction():
    from bn_invariants.api import _first_failure
    plain, carrying = ValueError("first"), AssertionError("second")
    carrying.reproduction = "Case(...)"
    group = ExceptionGroup("Hypothesis found 2 distinct failures", [plain, carrying])
    assert _first_failure(group) is carrying and _first_failure(plain) is plain


@pytest.mark.parametrize("kwargs, message", [
    ({"devices": ["tpu"]}, "device 'tpu': should be 'cpu' or 'cuda'"),
    ({"invariants": ["no-such"]}, "unknown invariant 'no-such'"),
    ({"settings": "no-such-profile"}, "Hypothesis profile 'no-such-profile' is not registered"),
    ({"replicas": 0}, "replicas=0, but should be at least 1"),
])
def test_bad_arguments_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_batch_norm(ZooBatchNorm, **kwargs)


def test_cli_exit_codes_table_and_json(tmp_path, capsys):
    path = tmp_path / "report.json"
    # pinned to the CPU: the table row and the count below are one device's (unpinned, the
    # CLI checks every available device, so a CUDA machine reports two rows)
    ok = main(["check", "bn_invariants.zoo.base:ZooBatchNorm", "--profile", "ci",
               "--invariant", "shift-invariance", "--device", "cpu", "--json", str(path)])
    out = capsys.readouterr()
    assert ok == 0, out.out
    assert "shift-invariance  cpu     pass" in out.out and "1 passed, 0 failed" in out.out
    assert "[1/" in out.err, "no progress line on stderr"
    assert json.loads(path.read_text())["results"][0]["verdict"] == "pass"
    bad = main(["check", "bn_invariants.zoo.detached_mean:DetachedMeanBatchNorm", "--quiet",
                "--profile", "ci", "--invariant", "zero-bias-gradient"])
    out = capsys.readouterr()
    assert bad == 1 and "reproduce: Case(" in out.out and out.err == ""
    assert main(["check", "no.such:Thing"]) == 2
    assert "does not import" in capsys.readouterr().err


def test_the_registry_hash_is_the_same_in_every_process():
    import subprocess
    import sys
    probe = "import bn_invariants; print(bn_invariants.registry_hash())"
    runs = {subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           timeout=120).stdout.strip() for _ in range(2)}
    assert len(runs) == 1 and len(runs.pop()) == 12, f"hashes={runs}, but should be one 12-digit hash"


def test_every_builtin_subject_has_a_spec_that_loads_it_back():
    from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS, load_subject
    for subject in BUILTIN_SUBJECTS:
        assert load_subject(subject.spec).factory is subject.factory, subject.spec


# Found by a new user's run: the API and the CLI drew momentum=None for a layer that
# declines it (38 SubjectError failures, a real gradient bug masked), where the plugin skips.
DECLINES = "tests.fixtures.bad_impls:NoCumulativeAverage"


def test_the_api_never_draws_an_option_the_subject_declines():
    report = check_batch_norm(DECLINES, devices=["cpu"], settings=CI, raise_on_failure=False,
                              invariants=["running-stats-update", "running-stats-cumulative"])
    verdicts = {r.invariant: (r.verdict, r.message) for r in report.results}
    assert verdicts["running-stats-update"][0] == "pass", verdicts
    assert verdicts["running-stats-cumulative"][0] == "skip"
    assert "declines" in verdicts["running-stats-cumulative"][1]
    assert "momentum=None" in verdicts["running-stats-cumulative"][1]


def test_the_api_skips_what_torch_own_kernel_violates_the_same_way_unless_strict():
    lenient = check_batch_norm(DECLINES, devices=["cpu"], settings=CI, raise_on_failure=False,
                               invariants=["extreme-magnitudes"])
    (result,) = lenient.results
    assert result.verdict == "skip" and result.message.startswith("inherited from torch: ")
    assert result.reproduction
    strict = check_batch_norm(DECLINES, devices=["cpu"], settings=CI, raise_on_failure=False,
                              invariants=["extreme-magnitudes"], strict=True)
    assert [r.verdict for r in strict.results] == ["fail"]


def test_the_cli_takes_strict(capsys):
    assert main(["check", DECLINES, "--device", "cpu", "--invariant", "extreme-magnitudes",
                 "--profile", "ci", "--quiet"]) == 0
    assert main(["check", DECLINES, "--device", "cpu", "--invariant", "extreme-magnitudes",
                 "--profile", "ci", "--quiet", "--strict"]) == 1


def test_outside_pytest_the_api_uses_the_suites_profile_not_hypothesis_default(monkeypatch):
    """Hypothesis's own default profile (100 examples, a 200 ms deadline) is what a script
    outside pytest has loaded; the report said "profile default" where the docs say dev."""
    from bn_invariants import api
    from bn_invariants.strategies.profiles import default_profile
    chosen, name = api._settings(None, lambda: "default")
    assert name == default_profile() and chosen.deadline is None
    assert api._settings(None, lambda: "thorough") == (None, "thorough")


TEACHING = "bn_invariants.zoo.wild.teaching:CourseBatchNorm"  # keeps the biased running_var


def test_the_api_and_the_cli_take_the_plugins_conventions():
    """Found by a new user's run: --bn-running-var, --bn-momentum and --bn-frozen existed
    only in the plugin, so a Keras-style or frozen layer could not be checked otherwise."""
    from bn_invariants.cli import MOMENTUM, RUNNING_VAR
    from bn_invariants.invariants import conventions
    assert (RUNNING_VAR, MOMENTUM) == (conventions.RUNNING_VAR, conventions.MOMENTUM)
    only = ["running-stats-update"]
    torch_way = check_batch_norm(TEACHING, devices=["cpu"], invariants=only, settings=CI,
                                 raise_on_failure=False)
    declared = check_batch_norm(TEACHING, devices=["cpu"], invariants=only, settings=CI,
                                raise_on_failure=False,
                                conventions=conventions.Conventions(running_var="biased"))
    assert [r.verdict for r in torch_way.results] == ["fail"]
    assert [r.verdict for r in declared.results] == ["pass"]
    assert conventions.declared() == conventions.Conventions()  # restored after the run
    frozen = check_batch_norm(TEACHING, devices=["cpu"], invariants=only, settings=CI,
                              raise_on_failure=False,
                              conventions=conventions.Conventions(frozen=True))
    assert [r.verdict for r in frozen.results] == ["skip"]
    assert main(["check", TEACHING, "--device", "cpu", "--invariant", "running-stats-update",
                 "--profile", "ci", "--quiet", "--running-var", "biased"]) == 0
