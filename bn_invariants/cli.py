"""The command line:

* ``bn-invariants check package.module:Name [--json report.json]``: every invariant;
* ``bn-invariants replay INVARIANT package.module:Name "Case(...)"``: one counterexample
  again, as a report's ``replay:`` line spells it;
* ``bn-invariants list``: the invariant ids and the defect causes.

Exit status as pytest's: 0 when every invariant holds, 1 when one is violated, 2 for a
usage error (a spec that does not import, an unknown invariant or device).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RUNNING_VAR, MOMENTUM = ("unbiased", "biased"), ("torch", "keep")
"""The conventions' choices (invariants/conventions.py), spelled here so that --help needs
no torch import; a test holds them equal."""
LEVELS = ("semantic", "precision", "range")
"""The levels (invariants/causes.py), likewise."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bn-invariants",
        description="Property-based verification of batch normalization implementations.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check", help="check a batch norm against every invariant",
        description="Search every invariant for a counterexample on IMPL, print a table "
                    "(invariant, device, verdict, worst ratio to tolerance, reproduction) "
                    "and exit 0 (all hold) or 1 (one is violated).")
    check.add_argument("impl", metavar="IMPL",
                       help="package.module:Name, a class or factory with "
                            "torch.nn.BatchNorm2d's constructor")
    check.add_argument("--device", action="append", choices=("cpu", "cuda"), default=None,
                       help="check on this device (repeatable; default: every available one)")
    check.add_argument("--invariant", action="append", default=None, metavar="ID",
                       help="check only this invariant (repeatable; default: all)")
    check.add_argument("--profile", default=None,
                       help="Hypothesis profile: dev, ci, ci-seeded or thorough (default: ci "
                            "when the CI variable is set, dev otherwise)")
    check.add_argument("--ref", default=None, metavar="package.module:Name",
                       help="differential mode: also check agreement with this implementation")
    check.add_argument("--replicas", type=int, default=1, metavar="K",
                       help="check K problems per drawn example (default 1)")
    check.add_argument("--json", type=Path, default=None, metavar="PATH",
                       help="also write the report as JSON to PATH")
    check.add_argument("--quiet", action="store_true", help="no progress lines, only the table")
    check.add_argument("--strict", action="store_true",
                       help="fail, not skip, where torch's own kernel violates the same way "
                            "(the plugin's --bn-strict)")
    check.add_argument("--running-var", choices=RUNNING_VAR, default="unbiased",
                       help="the running variance the batch norm keeps (the plugin's "
                            "--bn-running-var; default: unbiased, as torch)")
    check.add_argument("--momentum", choices=MOMENTUM, default="torch",
                       help="torch: new = (1-m) old + m batch; keep: Keras's new = m old + "
                            "(1-m) batch (the plugin's --bn-momentum)")
    check.add_argument("--frozen", action="store_true",
                       help="an eval-only batch norm: only the invariants that hold for one "
                            "(the plugin's --bn-frozen)")
    check.add_argument("--level", choices=LEVELS, default="range",
                       help="the least serious level of defect that fails (the plugin's "
                            "--bn-level; default: range, i.e. every level)")
    check.add_argument("--dtypes", default=None, metavar="LIST",
                       help="check only these dtypes, comma-separated, e.g. float32,float64 "
                            "(the plugin's --bn-dtypes)")
    check.add_argument("--baseline", type=Path, default=None, metavar="PATH",
                       help="an earlier --json report: the violations it records are known, "
                            "not failures (the plugin's --bn-baseline)")
    replay = commands.add_parser(
        "replay", help="check one counterexample again",
        description="Check CASE (a report's Case(...)) of INVARIANT on IMPL; print the "
                    "violation and exit 1, or exit 0 when it holds.")
    replay.add_argument("invariant", metavar="INVARIANT", help="the invariant's id")
    replay.add_argument("impl", metavar="IMPL", help="package.module:Name")
    replay.add_argument("case", metavar="CASE", help='the counterexample, "Case(...)"')
    commands.add_parser("list", help="list the invariant ids and the defect causes",
                        description="Print every invariant id with its title, then every "
                                    "cause id with its level and one sentence.")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from bn_invariants import __version__
        print(f"bn-invariants {__version__}")
        return 0
    if args.command == "replay":
        return _replay(args)
    if args.command == "list":
        return _list()
    if args.command != "check":
        parser.print_help()
        return 2
    return _check(args)


def _replay(args) -> int:
    from bn_invariants.invariants import SubjectError
    from bn_invariants.replay import replay
    try:
        violation = replay(args.invariant, args.impl, args.case)
    except (ValueError, SubjectError) as exc:
        print(f"bn-invariants: error: {exc}", file=sys.stderr)
        return 2
    if violation:
        print(f"{args.invariant} fails for {args.impl}: {violation}")
        return 1
    print(f"{args.invariant} holds for {args.impl} on this case")
    return 0


def _list() -> int:
    from bn_invariants.invariants import REGISTRY
    from bn_invariants.invariants.causes import CAUSES
    print("invariants:")
    for invariant in REGISTRY.values():
        print(f"  {invariant.id:38s} {invariant.title}")
    print("causes (level):")
    for cause in CAUSES.values():
        print(f"  {cause.id:26s} {cause.level or 'by evidence':10s} {cause.summary}")
    return 0


def _check(args) -> int:
    from bn_invariants.api import check_batch_norm
    from bn_invariants.invariants import SubjectError
    from bn_invariants.invariants.conventions import Conventions
    from bn_invariants.strategies.profiles import default_profile

    def progress(i, n, result):
        ratio = "" if result.worst_ratio is None else f", worst ratio {result.worst_ratio:.3g}"
        print(f"[{i}/{n}] {result.invariant} on {result.device}: {result.verdict}"
              f"{ratio} ({result.seconds:.1f} s)", file=sys.stderr, flush=True)

    try:
        report = check_batch_norm(
            args.impl, devices=args.device, invariants=args.invariant,
            settings=args.profile or default_profile(), reference=args.ref,
            replicas=args.replicas, progress=None if args.quiet else progress,
            raise_on_failure=False, strict=args.strict,
            conventions=Conventions(args.running_var, args.momentum, args.frozen),
            level=args.level, dtypes=args.dtypes, baseline=args.baseline)
    except (ValueError, SubjectError) as exc:
        print(f"bn-invariants: error: {exc}", file=sys.stderr)
        return 2
    print(f"bn-invariants {report.version} (registry {report.registry}); torch {report.torch}; "
          f"profile {report.profile}; subject {report.subject}")
    for line in report.coverage:
        print(f"coverage on {line}")
    print(report.table())
    if report.failures:
        print()
        print(report.failure_text())
    elif report.findings:
        print()
        print("\n".join(report.defect_lines()))
    fixed = report.fixed()
    if fixed:
        print("fixed since the baseline: " + ", ".join(
            f"{inv} on {device}" + (f" in {dtype}" if dtype else "") for inv, device, dtype in fixed)
            + "; update it with --json")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
        print(f"report written to {args.json}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
