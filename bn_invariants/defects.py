"""From violated invariants to defects: each failure is a Finding (invariant, device, dtype,
cause, level); findings of one cause are one Defect.  Also the levels summary and the
baseline (an earlier report's violations, known rather than failing).

Shared by the plugin's summary and JSON report, the API and the CLI, so the three say the
same thing.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bn_invariants.invariants.causes import CAUSES, LEVELS, fails_run, level_rank

FAILING, KNOWN, BEYOND_LEVEL = "fail", "known", "beyond-level"
"""A finding's status: it fails the run; it is in the baseline; its level is past
``--bn-level`` (reported, not failing)."""


@dataclass(frozen=True)
class Finding:
    """One violated invariant on one device, with its likely cause."""

    invariant: str
    device: str
    dtype: str | None
    cause: str
    level: str
    evidence: str = ""
    message: str = ""
    """The violation, first line."""
    size: int = 0
    """Elements of the counterexample's input (the smallest is shown)."""
    replay: str = ""
    """One line that replays the counterexample."""
    status: str = FAILING
    script: str = ""
    """One line that runs its stand-alone reproduction (a script written to
    bn-invariants-repro/, for an output or dl/dx out of bounds), else ''."""

    @property
    def key(self) -> tuple:
        """The violation: invariant, device, dtype."""
        return (self.invariant, self.device, self.dtype)

    @property
    def defect_key(self) -> tuple:
        """The defect it belongs to: cause, device, dtype."""
        return (self.cause, self.device, self.dtype)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Defect:
    """The findings of one cause."""

    cause: str
    level: str
    findings: list = field(default_factory=list)

    @property
    def invariants(self) -> list:
        return sorted({f.invariant for f in self.findings})

    @property
    def dtypes(self) -> list:
        return sorted({f.dtype for f in self.findings if f.dtype})

    @property
    def failing(self) -> bool:
        """Whether any of its findings fails the run."""
        return any(f.status == FAILING for f in self.findings)

    @property
    def example(self) -> Finding:
        """The finding with the smallest counterexample (one with a replay first)."""
        return min(self.findings, key=lambda f: (not f.replay, f.size))

    def to_json(self) -> dict:
        cause = CAUSES[self.cause]
        example = self.example
        return {"cause": self.cause, "level": self.level, "invariants": self.invariants,
                "dtypes": self.dtypes, "summary": cause.summary, "fix": cause.fix,
                "evidence": example.evidence, "counterexample": example.message,
                "replay": example.replay, "script": example.script,
                "status": FAILING if self.failing else example.status}

    def block(self, width: int = 100) -> list:
        """At most about 12 lines: cause and level, where, evidence, fix, the smallest
        counterexample and how to replay it."""
        cause, example = CAUSES[self.cause], self.example
        status = "" if self.failing else f" [{_STATUS_WORDS[example.status]}]"
        dtypes = f" in {', '.join(self.dtypes)}" if self.dtypes else ""
        lines = [f"{self.cause} ({self.level}){status}: {len(self.invariants)} invariant"
                 f"{'s' if len(self.invariants) > 1 else ''}{dtypes}",
                 *_wrap(f"invariants: {_listed(self.invariants)}", width),
                 *_wrap(f"why: {cause.summary}", width),
                 *_wrap(f"evidence: {example.evidence}", width),
                 *_wrap(f"fix: {cause.fix}", width),
                 *_wrap(f"smallest: {example.invariant} on {example.device}: "
                        f"{_clip(_without_subject(example.message), width + width // 2)}", width)]
        if example.replay:
            lines.append(f"replay: {example.replay}")
        if example.script.startswith("python "):
            lines.append(f"stand-alone: {example.script}")
        return lines


_STATUS_WORDS = {KNOWN: "known: in the baseline",
                 BEYOND_LEVEL: "reported, not failing: beyond --bn-level"}


LISTED = 6
"""Invariants named in a defect's block (the JSON report names them all)."""


def _listed(names: list) -> str:
    shown = ", ".join(names[:LISTED])
    return shown if len(names) <= LISTED else f"{shown} and {len(names) - LISTED} more"


def _without_subject(message: str) -> str:
    """A violation's message less the '[subject NAME; ' its context starts with (the
    defect is the subject's already)."""
    return re.sub(r"\[subject [^;\]]*; ", "[", message)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _wrap(text: str, width: int) -> list:
    """``text`` in lines of about ``width`` characters, continuations indented."""
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "    " + word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line] if line else lines


def defects_of(findings) -> list:
    """The findings grouped by cause, most serious first: by level, then the catalogue's
    order of causes, failing before known."""
    by_cause: dict = {}
    for finding in findings:  # one level a cause, but unknown's level is the evidence's
        key = (finding.cause, finding.level)
        by_cause.setdefault(key, Defect(finding.cause, finding.level)).findings.append(finding)
    order = list(CAUSES)
    return sorted(by_cause.values(), key=lambda d: (level_rank(d.level), not d.failing,
                                                    order.index(d.cause)))


def levels_of(defects) -> dict:
    """{level: "holds" | "fails"} over every defect, failing or not."""
    failing = {d.level for d in defects}
    return {level: "fails" if level in failing else "holds" for level in LEVELS}


def levels_line(defects) -> str:
    """'semantic: holds; precision: fails in float16, bfloat16 (low-precision-statistics);
    range: fails (extreme-range)'."""
    parts = []
    for level in LEVELS:
        here = [d for d in defects if d.level == level]
        if not here:
            parts.append(f"{level}: holds")
            continue
        dtypes = sorted({t for d in here for t in d.dtypes})
        where = f" in {', '.join(dtypes)}" if level == "precision" and dtypes else ""
        parts.append(f"{level}: fails{where} ({', '.join(d.cause for d in here)})")
    return "; ".join(parts)


def contract_finding(name: str, device: str, message: str) -> Finding:
    """A broken contract as a Finding: ``batch-normalisation`` is ``not-a-batch-norm``,
    the construction and output contracts ``contract``."""
    cause = "not-a-batch-norm" if name == "batch-normalisation" else "contract"
    return Finding(name, device, None, cause, "semantic", message, message)


def settled(finding: Finding, threshold: str, baseline: "Baseline") -> Finding:
    """``finding`` with its status (``status_of``)."""
    return replace(finding, status=status_of(finding, threshold, baseline))


def status_of(finding: Finding, threshold: str, baseline: "Baseline") -> str:
    """FAILING, KNOWN (the baseline holds it) or BEYOND_LEVEL (past ``threshold``)."""
    if baseline.knows(finding):
        return KNOWN
    if not fails_run(finding.level, threshold):
        return BEYOND_LEVEL
    return FAILING


class BaselineError(ValueError):
    """A baseline file that cannot be read; the message is one sentence."""


@dataclass(frozen=True)
class Baseline:
    """What an earlier report recorded: its violations (invariant, device, dtype) and its
    defects (cause, device, dtype).  A finding is known when either holds it: the same
    violation, or the same defect met on another invariant (a search of a changed layer
    reaches a defect through other invariants than before; fixing the defect fixes all)."""

    violations: frozenset = frozenset()
    defects: frozenset = frozenset()

    def knows(self, finding: Finding) -> bool:
        return finding.key in self.violations or finding.defect_key in self.defects

    def __bool__(self) -> bool:
        return bool(self.violations)


def load_baseline(path) -> Baseline:
    """The violations and defects an earlier report recorded: a ``--bn-report`` (plugin),
    ``Report.to_json()`` (API) or ``--json`` (CLI) file."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BaselineError(f"baseline {path}: cannot be read as a JSON report "
                            f"({type(exc).__name__}: {exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise BaselineError(f"baseline {path}: not a bn-invariants report (no \"results\" "
                            f"list); write one with --bn-report=PATH")
    violated = [r for r in document["results"] if isinstance(r, dict) and r.get("violated")]
    return Baseline(frozenset((r.get("invariant"), r.get("device"), r.get("dtype")) for r in violated),
                    frozenset((r.get("cause"), r.get("device"), r.get("dtype")) for r in violated))


def fixed_since(baseline: Baseline, findings, checked: set) -> list:
    """Baseline violations whose (invariant, device) was checked in this run and hold now."""
    now = {f.key for f in findings}
    return sorted((k for k in baseline.violations if k not in now and (k[0], k[1]) in checked),
                  key=lambda k: tuple(str(p) for p in k))
