"""The end of a run: coverage, skips grouped by reason, inherited deviations counted,
the declared conventions that would explain the failures, and the defects (failures
grouped by likely cause, most serious first) with the levels that hold."""
from __future__ import annotations

from bn_invariants.invariants.conventions import declared
from bn_invariants.options import ONLY_INVARIANTS, OUTCOMES, PROBED

SKIP_REASONS = 2
"""Skip reasons listed without -v (the most frequent first)."""
SELF_TESTS_NOTE = ("only the invariants ran (--bn-impl in the suite's own checkout); its "
                   "self-tests run with a plain `pytest` (or name their paths)")


def write_summary(tr, config, coverage_lines) -> None:
    """Write the batch-norm part of the terminal summary."""
    outcomes = config.stash.get(OUTCOMES, None)
    tr.write_sep("-", "batch-norm coverage")
    for line in coverage_lines:
        tr.write_line(line)
    if outcomes is None:
        return
    if outcomes.skips:
        tr.write_sep("-", "batch-norm skips, by reason")
        reasons = sorted(outcomes.skips.items(), key=lambda kv: -kv[1])
        shown = reasons if config.get_verbosity() > 0 else reasons[:SKIP_REASONS]
        for reason, count in shown:
            tr.write_line(f"  {count} × {reason}")
        if len(shown) < len(reasons):
            rest = sum(count for _, count in reasons[len(shown):])
            tr.write_line(f"  {rest} more, for {len(reasons) - len(shown)} other reasons (-v lists them)")
    write_defects(tr, outcomes)
    tr.write_sep("-", "batch-norm verdicts")
    if outcomes.inherited:
        tr.write_line(f"  {outcomes.inherited} inherited from torch: torch's own batch norm "
                      f"fails the same counterexamples the same way (xfail; --bn-strict "
                      f"makes them failures)")
    if outcomes.known:
        tr.write_line(f"  {outcomes.known} known (in the baseline): reported as xfails")
    if outcomes.beyond:
        tr.write_line(f"  {outcomes.beyond} beyond --bn-level={outcomes.level}: reported as "
                      f"xfails, not failing")
    tr.write_line(f"  {outcomes.failed} failed" if outcomes.failed else "  no failures")
    if outcomes.failed:
        for probed in config.stash[PROBED].values():
            if probed.diagnosis is None:
                continue
            for flag, why in probed.diagnosis.suggestions(declared()):
                tr.write_line(f"  suggestion: {flag}: {why}; if that is the design, "
                              f"declare it with {flag} (or its ini key)")
    if config.stash.get(ONLY_INVARIANTS, False):
        tr.write_line(f"  note: {SELF_TESTS_NOTE}")
    if outcomes.failed and config.option.tbstyle == "no":
        tr.write_line("  each failed test's whole block (got, expected, tolerance, context, the "
                      "script): pytest -v, or --bn-report")


def write_defects(tr, outcomes) -> None:
    """The defects, one block each, most serious first; the levels line; the baseline's
    violations that hold now."""
    from bn_invariants.defects import defects_of, fixed_since, levels_line
    defects = defects_of(outcomes.findings)
    if defects:
        tr.write_sep("=", f"batch-norm defects: {len(defects)}, most serious first")
        for i, defect in enumerate(defects, 1):
            for j, line in enumerate(defect.block()):
                tr.write_line(f"{i}. {line}" if j == 0 else f"   {line}")
    tr.write_line(f"levels: {levels_line(defects)}")
    scripts = sorted({f.script for f in outcomes.findings if f.script.startswith("python ")})
    if scripts:
        folder = scripts[0].split()[1].rpartition("/")[0] or "."
        tr.write_line(f"{len(scripts)} stand-alone reproduction(s) written to {folder}/ "
                      f"(it ignores itself in git; add it to .gitignore to be sure)")
    fixed = fixed_since(outcomes.baseline, outcomes.findings, outcomes.checked)
    if fixed:
        shown = ", ".join(f"{inv} on {device}" + (f" in {dtype}" if dtype else "")
                          for inv, device, dtype in fixed[:8])
        more = f" and {len(fixed) - 8} more" if len(fixed) > 8 else ""
        tr.write_line(f"fixed since the baseline: {shown}{more}; update it with --bn-report")
