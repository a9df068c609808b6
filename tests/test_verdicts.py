"""Verdicts a user can act on, end to end from another project: one defect per cause, the
levels, the scope (--bn-dtypes), the baseline, a short output, and one verdict in the
plugin, the API and the CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from bn_invariants import check_batch_norm
from bn_invariants.cli import main as cli

FIXTURE = Path(__file__).with_name("fixtures") / "handwritten.py"


def run_plugin(project: Path, *args, timeout=600):
    """``pytest`` in ``project`` (its own rootdir), under the ci profile, as CI runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-p", "no:benchmark", *args], cwd=project, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture
def project(tmp_path):
    """Another project holding the hand-written batch norms as ``userbn``."""
    shutil.copy(FIXTURE, tmp_path / "userbn.py")
    return tmp_path


def defects(path: Path) -> list:
    return json.loads(path.read_text())["defects"]


def test_a_handwritten_batch_norm_has_one_precision_defect_and_a_scope_that_holds(project):
    first = run_plugin(project, "--bn-impl=userbn:HandWrittenBatchNorm", "--bn-report=r.json")
    assert first.returncode == 1, first.stdout[-3000:]
    found = defects(project / "r.json")
    below_range = [(d["cause"], d["level"]) for d in found if d["level"] != "range"]
    assert below_range == [("low-precision-statistics", "precision")], found
    assert set(found[0]["dtypes"]) <= {"float16", "bfloat16"}, found[0]
    assert "precision: fails in" in first.stdout and "(low-precision-statistics)" in first.stdout

    scoped = run_plugin(project, "--bn-impl=userbn:HandWrittenBatchNorm",
                        "--bn-dtypes=float32,float64", "--bn-level=precision")
    assert scoped.returncode == 0, scoped.stdout[-3000:]
    assert "left out by --bn-dtypes: float16, bfloat16" in scoped.stdout, scoped.stdout[-2000:]

    # the baseline written by the failing run makes the same run pass ...
    again = run_plugin(project, "--bn-impl=userbn:HandWrittenBatchNorm", "--bn-baseline=r.json")
    assert again.returncode == 0, again.stdout[-3000:]
    assert "known (in the baseline)" in again.stdout
    # ... and a worse batch norm against it fails on its new defect alone
    worse = run_plugin(project, "--bn-impl=userbn:DetachedMeanHandWrittenBatchNorm",
                       "--bn-baseline=r.json", "--bn-report=worse.json")
    assert worse.returncode == 1, worse.stdout[-3000:]
    failing = [d["cause"] for d in defects(project / "worse.json") if d["status"] == "fail"]
    assert failing == ["detached-mean"], failing
    failed_lines = [line for line in worse.stdout.splitlines() if line.startswith("FAILED")]
    assert failed_lines and all("[detached-mean, semantic]" in line for line in failed_lines), (
        failed_lines)


def test_a_run_with_one_cause_is_short(project):
    result = run_plugin(project, "--bn-impl=userbn:UnbiasedHandWrittenBatchNorm", "-m",
                        "bn_invariants", "--bn-dtypes=float32,float64", "--bn-report=r.json")
    assert result.returncode == 1
    assert [d["cause"] for d in defects(project / "r.json")] == ["unbiased-normalisation"]
    # the subject's own warnings (torch.var at one value) are pytest's section, not ours
    before, _, rest = result.stdout.partition("= warnings summary =")
    ours = before + (rest.split("-- Docs: ", 1)[1].split("\n", 1)[1] if rest else "")
    lines = ours.splitlines()
    assert len(lines) <= 60, f"{len(lines)} lines:\n{result.stdout}"
    summary = result.stdout.split("short test summary info", 1)[1].splitlines()[1:-1]
    assert summary and all(line.startswith("FAILED ") for line in summary), (
        f"the short summary should be one line per failed test, not their blocks: {summary}")


ZOO = ["bn_invariants.zoo.detached_mean:DetachedMeanBatchNorm",
       "bn_invariants.zoo.numerics:UnbiasedNormalisationBatchNorm",
       "bn_invariants.zoo.wild.not_batch_norms:layer_norm"]
INVARIANTS = ["zero-bias-gradient", "output-moments", "eval-affine-map", "eps-honoured"]


@pytest.mark.parametrize("spec", ZOO, ids=lambda s: s.rpartition(":")[2])
def test_the_plugin_the_api_and_the_cli_give_one_verdict(spec, tmp_path, capsys):
    pattern = " or ".join(INVARIANTS + ["batch-normalisation", "contract"])
    plugin = run_plugin(tmp_path, f"--bn-impl={spec}", "--bn-device=cpu", "-k", pattern,
                        "--bn-report=r.json")
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    by_plugin = {r["invariant"] for r in results if r["outcome"] == "fail"}
    by_plugin_causes = [d["cause"] for d in defects(tmp_path / "r.json")]

    report = check_batch_norm(spec, devices=["cpu"], invariants=INVARIANTS,
                              settings=settings.get_profile("ci"), raise_on_failure=False)
    by_api = {r.invariant for r in report.failures}
    assert by_api == by_plugin, f"API failed {by_api}, the plugin {by_plugin}"
    assert [d.cause for d in report.defects] == by_plugin_causes

    code = cli(["check", spec, "--device=cpu", "--profile=ci", "--quiet", "--json",
                str(tmp_path / "cli.json"), *[f"--invariant={i}" for i in INVARIANTS]])
    capsys.readouterr()
    document = json.loads((tmp_path / "cli.json").read_text())
    by_cli = {r["invariant"] for r in document["results"] if r["verdict"] == "fail"}
    assert by_cli == by_plugin and code == (1 if by_plugin else 0) == plugin.returncode, (
        f"CLI failed {by_cli} (exit {code}), the plugin {by_plugin} (exit {plugin.returncode})")
    assert [d["cause"] for d in document["defects"]] == by_plugin_causes


def test_an_option_of_the_plugin_without_a_subject_is_an_error(tmp_path):
    """From another project, ``pytest --bn-device=cuda`` alone would check nothing."""
    (tmp_path / "test_own.py").write_text("def test_own():\n    pass\n")
    result = run_plugin(tmp_path, "--bn-device=cpu", timeout=120)
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert "--bn-device has nothing to apply to: name the batch norm" in result.stderr


def test_the_scope_applies_to_the_distributed_family_too(tmp_path):
    result = run_plugin(tmp_path, "--bn-dist-impl=bn_invariants.zoo.distributed:AllReduceBatchNorm",
                        "--bn-dtypes=float16", timeout=300)
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert "--bn-dtypes=float16: the distributed subject" in result.stderr
    assert "takes none of them (float32: ranks 2,3,4,5; float64" in result.stderr
