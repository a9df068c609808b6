"""Machine-readable report of a run: ``pytest --bn-report=PATH``.

Writes one JSON document when the session ends:

    {"version": "0.2.0", "registry": "<12 hex digits>", "torch": "2.13.0+cpu",
     "profile": "ci", "reference": "reference(float64)",
     "coverage": {"<subject>": {"<device>": {"<dtype>": [ranks...]}}},
     "results": [{"test": nodeid, "invariant": id, "subject": name, "device": "cpu",
                  "long": bool,  # test_invariant_long_reduction
                  "dtypes": {"float32": [2, 3, 4, 5], ...},
                  "outcome": "pass" | "fail" | "error" | "skip" | "xfail" | "xpass",
                  "reason": str | null, "duration": seconds,
                  # a violation (failing, known in the baseline, or past --bn-level):
                  "violated": true, "cause": id, "level": "semantic" | "precision" | "range",
                  "dtype": the counterexample's dtype, "status": "fail" | "known" | "beyond-level",
                  "evidence": str, "replay": str,
                  "script": "python bn-invariants-repro/<name>.py" | ""}],
     # a failure's reason is its report: the violation, its cause and level
     "level": "range",  # --bn-level: the least serious level that fails the run
     "defects": [{"cause", "level", "invariants", "dtypes", "summary", "fix", "evidence",
                  "counterexample", "replay", "script", "status"}, ...],  # most serious first
     "levels": {"semantic": "holds" | "fails", "precision": ..., "range": ...},
     "baseline": {"path": str, "known": n, "fixed": [[invariant, device, dtype], ...]} | null,
     "summary": {"pass": n, "fail": n, ...}}

``results`` holds one entry per ``test_invariant`` and ``test_invariant_long_reduction``
test (and per ``test_distributed_invariant`` test of the distributed family, and per
contract test: ``batch-normalisation``, ``construction-contract``,
``output-contract-rank<r>``): the dtypes are those its target draws (the subject's probed
space, restricted to where the invariant applies, less known deviations); a skip says why
(unsupported by the subject, no applicable input, device absent).  ``coverage`` is what
each subject accepts on each device, as probed at start-up (the plugin's COVERAGE stash).
The causes and levels are those of ``bn_invariants.invariants.causes``
(docs/reading-a-verdict.md); ``defects`` and ``levels`` cover every violation, failing
or not.  A report is a baseline for a later run (``--bn-baseline``): its ``violated``
results are known there.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bn_invariants import options

REPORT = pytest.StashKey["BatchNormReport"]()


def register_report(config, path) -> None:
    """Write the JSON report to ``path`` when the session ends."""
    report = BatchNormReport(config, Path(path))
    config.stash[REPORT] = report
    config.pluginmanager.register(report, "bn-json-report")


class BatchNormReport:
    """Collects the invariant tests' outcomes and writes them at the session's end."""

    def __init__(self, config, path: Path):
        self.config, self.path = config, path
        self.entries: dict = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        for item in items:
            described = describe_item(item)
            if described is not None:
                self.entries[item.nodeid] = _entry(item.nodeid, described)
                # under pytest-xdist the controller collects nothing: the description
                # travels to it with each test's reports
                item.user_properties.append((DESCRIBED, described))

    def pytest_runtest_logreport(self, report):
        entry = self.entries.get(report.nodeid)
        if entry is None:
            described = dict(report.user_properties).get(DESCRIBED)
            if described is None:
                return
            entry = self.entries[report.nodeid] = _entry(report.nodeid, described)
        entry["duration"] = round(entry["duration"] + report.duration, 4)
        finding = getattr(report, "bn_finding", None)
        if finding is not None:
            entry.update(violated=True, **{k: finding[k] for k in FINDING_FIELDS})
        outcome, reason = outcome_of(report)
        # The first non-pass phase decides (a failed teardown after a passed call fails).
        if outcome is not None and entry["outcome"] in (None, "pass"):
            entry["outcome"], entry["reason"] = outcome, reason

    def pytest_sessionfinish(self, session):
        if hasattr(self.config, "workerinput"):
            return  # an xdist worker: the controller writes the report
        results = list(self.entries.values())
        summary: dict = {}
        for entry in results:
            entry["outcome"] = entry["outcome"] or "not run"
            summary[entry["outcome"]] = summary.get(entry["outcome"], 0) + 1
        from bn_invariants import __version__, registry_hash
        from bn_invariants.defects import defects_of, fixed_since, levels_of
        outcomes = _stash_session(self.config, "OUTCOMES")
        findings = outcomes.findings if outcomes is not None else []
        defects = defects_of(findings)
        baseline = None
        if outcomes is not None and outcomes.baseline_path:
            baseline = {"path": str(outcomes.baseline_path), "known": outcomes.known,
                        "fixed": [list(k) for k in fixed_since(outcomes.baseline, findings,
                                                               outcomes.checked)]}
        document = {
            "version": __version__,
            "registry": registry_hash(),
            "torch": _torch_version(),
            "profile": _profile(),
            "reference": str(_stash(self.config, "REFERENCE", "")),
            "coverage": coverage(self.config, results),
            "results": results,
            "level": outcomes.level if outcomes is not None else "range",
            "defects": [d.to_json() for d in defects],
            "levels": levels_of(defects),
            "baseline": baseline,
            "summary": summary,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(f"batch-norm report written to {self.path}")


FINDING_FIELDS = ("cause", "level", "dtype", "status", "evidence", "replay", "script")
"""What a result takes from its Finding (bn_invariants.defects)."""
DESCRIBED = "bn_invariant"
"""The user property that carries a test's description (``describe_item``)."""


def _entry(nodeid: str, described: dict) -> dict:
    """A result entry, not yet run."""
    return {"test": nodeid, **described, "outcome": None, "reason": None, "duration": 0.0}


def describe_item(item) -> dict | None:
    """invariant, subject, device and dtypes of a test_invariant (or, for the distributed
    family, test_distributed_invariant; or a contract's id for test_contract) item (None
    for others)."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec else {}
    if getattr(item, "originalname", None) == "test_contract" and "contract" in params:
        contract, subject, device, _ = params["contract"]
        return {"invariant": contract, "subject": subject, "device": device, "dtypes": {}}
    name = getattr(item, "originalname", None)
    if name not in INVARIANT_TEST_NAMES:
        return None
    long = name == "test_invariant_long_reduction"
    target = params.get("target", params.get("dist_target"))
    if target is not None:
        return {"invariant": target.invariant.id, "subject": target.subject.name,
                "device": target.space.device, "long": long,
                "dtypes": {d: list(r) for d, r in target.space.dtype_ranks.items()}}
    return {**_parse_id(callspec.id if callspec else ""), "long": long, "dtypes": {}}


INVARIANT_TEST_NAMES = ("test_invariant", "test_invariant_long_reduction",
                        "test_distributed_invariant")


def _parse_id(ident: str) -> dict:
    """Split '<invariant>-<subject>-<device>' (a target-less param, e.g. an absent
    device) using the registry's ids, which may contain dashes."""
    from bn_invariants.invariants import REGISTRY
    rest, _, device = ident.rpartition("-")
    invariant = max((i for i in REGISTRY if rest.startswith(i + "-")), key=len, default="")
    return {"invariant": invariant or None, "subject": rest[len(invariant) + 1:] or None,
            "device": device or None}


def outcome_of(report) -> tuple:
    """(outcome, reason) of one phase's report; (None, None) for a passing setup/teardown."""
    if hasattr(report, "wasxfail"):
        return ("xfail" if report.skipped else "xpass"), report.wasxfail or None
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return "skip", reason.removeprefix("Skipped: ")
    if report.failed:
        reason = getattr(report, "bn_reason", None) or _first_line(report)
        return ("fail" if report.when == "call" else "error"), reason
    if report.when == "call":
        return "pass", None
    return None, None


def _first_line(report) -> str:
    text = getattr(report, "longreprtext", "") or ""
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    lines = errors or text.strip().splitlines()[-1:] or [""]
    return lines[0][:500]


def coverage(config, results) -> dict:
    """{subject: {device: {dtype: ranks}}}: conftest's probe results when available,
    otherwise the union of the reported targets' spaces."""
    probed = _stash(config, "COVERAGE", None)
    table: dict = {}
    if probed is not None:
        for (subject, device), space in probed.items():
            table.setdefault(subject, {})[device] = {d: list(r) for d, r in space.dtype_ranks.items()}
        return table
    for entry in results:
        if entry["subject"] and entry["device"]:
            spot = table.setdefault(entry["subject"], {}).setdefault(entry["device"], {})
            for dtype, ranks in entry["dtypes"].items():
                spot[dtype] = sorted(set(spot.get(dtype, [])) | set(ranks))
    return table


def _stash_session(config, key_name: str):
    """config.stash[options.<key_name>] (None where the single-process invariants are off)."""
    if not getattr(config, "stash", None) or not options.is_active(config):
        return None
    return config.stash.get(getattr(options, key_name), None)


def _stash(config, key_name: str, default):
    """config.stash[options.<key_name>]: what the plugin probed at start-up."""
    return config.stash.get(getattr(options, key_name), default)


def _torch_version() -> str:
    import torch
    return torch.__version__


def _profile() -> str:
    from bn_invariants.strategies.profiles import current_profile
    return current_profile()
