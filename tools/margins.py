"""Margins: how much of each invariant's bound torch's own kernels use.

    python3 -m tools.margins [--max-examples N] [--invariants a,b]

For each invariant and each of torch's CPU subjects, searches the ``ci`` profile's cases
(with ``target()`` climbing towards the bound) plus the long cases every run checks, and
records the worst observed error / bound.  Writes docs/data/margins.json, which
``tools.gen_docs`` shows on each invariant as its *margin*: 1 would be a false alarm, and a
worst ratio far below 1 means the bound is loose for torch (room for a bug to hide).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JSON_PATH = ROOT / "docs" / "data" / "margins.json"
MAX_EXAMPLES = 20

ENVELOPES = {
    "constant-channel-finite": "its bound is |γ|·max|x̂| + the output bound, an envelope the "
                               "output itself fills (|y − β| = |γ x̂| at the extreme value)",
    "variance-held-out-drift": "its bound sums the steps the subject itself took",
    "weight-norm-nondecreasing": "its bound holds the subject's own radial term 2η|⟨W, ∇⟩|, "
                                 "which the norm's change equals; weight-gradient-radial checks "
                                 "that term",
}
"""Invariants whose bound contains what the subject computed: their error / bound is near
1 by construction, so it measures no margin (the catalogue says why instead)."""


def measure(invariant_ids, max_examples: int) -> dict:
    """invariant id -> {subject name: worst ratio, or None where nothing was compared}."""
    import torch

    from bn_invariants.invariants import REGISTRY, Unsupported
    from bn_invariants.invariants.assertions import recording_ratios
    from bn_invariants.invariants.coverage import probe
    from bn_invariants.invariants.runner import find_violation, target_for
    from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS, REFERENCE_SUBJECT
    from bn_invariants.strategies.profiles import profile
    torch.set_num_threads(1)
    subjects = [s for s in BUILTIN_SUBJECTS if s is not REFERENCE_SUBJECT]
    spaces = {s.name: probe(s, "cpu") for s in subjects}
    out = {}
    for invariant_id in invariant_ids:
        row = {}
        for subject in subjects:
            target = target_for(REGISTRY[invariant_id], subject, spaces[subject.name])
            if not target.space:
                continue
            with recording_ratios() as worst:
                error = find_violation(target, profile("ci", max_examples=max_examples,
                                                       print_blob=False))
            if error is not None and not isinstance(error, Unsupported):
                row[subject.name] = "violation"
            else:
                row[subject.name] = round(worst[0], 4)
        out[invariant_id] = row
        print(f"{invariant_id}: {row}", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=MAX_EXAMPLES, metavar="N",
                        help=f"examples searched per invariant and subject (default {MAX_EXAMPLES})")
    parser.add_argument("--invariants", help="comma-separated ids: remeasure only these")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bn_invariants.invariants import REGISTRY
    ids = args.invariants.split(",") if args.invariants else sorted(
        i for i, inv in REGISTRY.items() if inv.kind == "single")
    old = json.loads(JSON_PATH.read_text()) if JSON_PATH.exists() else {}
    margins = {**old.get("margins", {}), **measure(ids, args.max_examples)}
    import torch
    doc = {"profile": "ci", "max_examples": args.max_examples, "torch": torch.__version__,
           "note": "worst observed error / bound per torch CPU subject (plus the long cases)",
           "margins": dict(sorted(margins.items())), "envelopes": ENVELOPES}
    JSON_PATH.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"margins: wrote {JSON_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
