"""--bn-report writes a JSON report: outcome, dtypes and skip reason of each invariant test.

One pytest subprocess on a tiny selection: the zoo's detached-mean batch norm, which
passes shift-invariance and fails zero-bias-gradient; CUDA, absent here, is skipped.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
IMPL = "bn_invariants.zoo.detached_mean:DetachedMeanBatchNorm"


def test_report_records_each_invariant_test(tmp_path):
    path = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "bn_invariants/invariant_tests.py",
         f"--bn-impl={IMPL}", "--hypothesis-profile=ci", f"--bn-report={path}",
         "-k", "shift-invariance or zero-bias-gradient"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert path.exists(), f"--bn-report wrote nothing; pytest said:\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
    doc = json.loads(path.read_text())
    assert doc["torch"] == torch.__version__
    assert doc["profile"] == "ci"
    from bn_invariants import __version__, registry_hash
    assert (doc["version"], doc["registry"]) == (__version__, registry_hash()), (
        "the report should name the suite's version and registry hash")
    assert doc["coverage"][IMPL]["cpu"]["float32"] == [2, 3, 4, 5]
    by_key = {(r["invariant"], r["device"]): r for r in doc["results"] if not r["long"]}
    assert {i for i, _ in by_key} == {"shift-invariance", "zero-bias-gradient"}
    longs = {(r["invariant"], r["device"]) for r in doc["results"] if r["long"]}
    assert longs == set(by_key), "every long-reduction test is a result too"
    passed, failed = by_key[("shift-invariance", "cpu")], by_key[("zero-bias-gradient", "cpu")]
    assert (passed["outcome"], failed["outcome"]) == ("pass", "fail"), run.stdout[-2000:]
    assert passed["subject"] == IMPL and passed["dtypes"]["float64"] == [2, 3, 4, 5]
    assert "dl/db" in failed["reason"]
    assert (failed["cause"], failed["level"], failed["status"]) == ("detached-mean", "semantic", "fail")
    assert [d["cause"] for d in doc["defects"]] == ["detached-mean"]
    assert doc["levels"] == {"semantic": "fails", "precision": "holds", "range": "holds"}
    if torch.cuda.is_available():  # the CUDA tests run too: the same verdicts there
        on_cuda = by_key[("shift-invariance", "cuda")], by_key[("zero-bias-gradient", "cuda")]
        assert tuple(r["outcome"] for r in on_cuda) == ("pass", "fail"), run.stdout[-2000:]
    else:
        skipped = by_key[("shift-invariance", "cuda")]
        assert skipped["outcome"] == "skip" and "cuda" in skipped["reason"]
        assert skipped["subject"] == IMPL
    failed_tests = run.stdout.count("\nFAILED ")
    assert failed_tests >= (2 if torch.cuda.is_available() else 1), run.stdout[-2000:]
    assert doc["summary"]["fail"] == failed_tests and run.returncode == 1, (
        "the report's summary should agree with pytest's")


def test_the_report_holds_every_result_under_xdist(tmp_path):
    """With pytest-xdist the controller collects nothing: each result reaches it with its
    test's reports (the first CUDA run, at -n 8, wrote "results": [])."""
    path = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "bn_invariants/invariant_tests.py", f"--bn-impl={IMPL}", "--bn-device=cpu",
         "--hypothesis-profile=ci", f"--bn-report={path}",
         "-k", "shift-invariance or zero-bias-gradient"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    doc = json.loads(path.read_text())
    outcomes = {r["invariant"]: r["outcome"] for r in doc["results"] if not r["long"]}
    assert outcomes == {"shift-invariance": "pass", "zero-bias-gradient": "fail"}, \
        run.stdout[-2000:]
    assert doc["results"][0]["dtypes"]["float64"] == [2, 3, 4, 5]
    counted = {k: v for k, v in doc["summary"].items()}
    assert len(doc["results"]) == 4 and counted["pass"] >= 1 and counted["fail"] >= 1
    assert counted["fail"] == run.stdout.count("\nFAILED ") and run.returncode == 1, (
        "the report's summary should agree with pytest's")
