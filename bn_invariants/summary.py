"""The end of a run: coverage, skips grouped by reason, inherited deviations counted,
and the declared conventions that would explain the failures."""
from __future__ import annotations

from bn_invariants.invariants.conventions import declared
from bn_invariants.plugin import ONLY_INVARIANTS

SELF_TESTS_NOTE = ("only the invariants ran (--bn-impl in the suite's own checkout); its "
                   "self-tests run with a plain `pytest` (or name their paths)")


def write_summary(tr, config, coverage_lines) -> None:
    """Write the batch-norm part of the terminal summary."""
    from bn_invariants.session import OUTCOMES, PROBED
    outcomes = config.stash.get(OUTCOMES, None)
    tr.write_sep("-", "batch-norm coverage")
    for line in coverage_lines:
        tr.write_line(line)
    if outcomes is None:
        return
    if outcomes.skips:
        tr.write_sep("-", "batch-norm skips, by reason")
        for reason, count in sorted(outcomes.skips.items(), key=lambda kv: -kv[1]):
            tr.write_line(f"  {count} × {reason}")
    tr.write_sep("-", "batch-norm verdicts")
    if outcomes.inherited:
        tr.write_line(f"  {outcomes.inherited} inherited from torch: torch's own batch norm "
                      f"fails the same counterexamples the same way (xfail; --bn-strict "
                      f"makes them failures)")
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
