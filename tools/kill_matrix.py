"""The kill matrix: which invariant catches which deliberately broken batch norm.

Runs every registered invariant against every zoo mutant (bn_invariants/zoo) and the
controls (the zoo's correct implementations and the float64 reference) on the CPU
with the ``ci`` profile's search (derandomized, 30 examples), and writes

* docs/data/kill_matrix.json: {"profile", "max_examples", "torch", "mutants",
  "matrix", "only_caught_by"} (read by the docs generator);
* docs/kill-matrix.md: rendered from that JSON and docs/data/time_to_detect.json
  alone (``markdown``), so ``python3 -m tools.gen_docs`` regenerates it and its
  freshness test covers it: a table per mutant (its catchers, the quickest one and
  its examples to the first failure), the invariants that alone catch a mutant, and
  why each other invariant is kept.  Its figure, docs/img/kill_matrix.png, is drawn
  by ``python3 -m tools.plots``.

Usage, from the repository root (several minutes on 2 cores)::

    python3 -m tools.kill_matrix [--jobs 2] [--mutants A,B] [--invariants x,y]

With ``--mutants`` or ``--invariants`` only those cells are rerun and merged into
the existing JSON.  A cell is "caught" (an InvariantViolation, or any other
exception the subject raised, found), "passed", "unsupported" (the subject
declined with Unsupported) or "n/a" (the subject accepts no input the
invariant applies to, or one is distributed and the other is not).

The distributed columns (the all-reduce reference and bn_invariants/zoo/distributed.py)
run the distributed family on W gloo workers; to refresh only them::

    python3 -m tools.kill_matrix --mutants AllReduceBatchNorm,UnweightedRankMeanBatchNorm,...
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tools.worth import WORTH

ROOT = Path(__file__).resolve().parent.parent
JSON_PATH = ROOT / "docs" / "data" / "kill_matrix.json"
MD_PATH = ROOT / "docs" / "kill-matrix.md"
MAX_EXAMPLES = 30
CONTROL_BUG = "none: a control, which must pass every invariant"


def search_settings(max_examples: int = MAX_EXAMPLES):
    """The ``ci`` profile's search (derandomized, no database, no deadline), without
    the shrink phase: whether a cell is caught does not depend on shrinking."""
    from hypothesis import HealthCheck, Phase

    from bn_invariants.strategies.profiles import profile
    return profile("ci", max_examples=max_examples, print_blob=False, report_multiple_bugs=False,
                   phases=(Phase.explicit, Phase.reuse, Phase.generate),
                   suppress_health_check=list(HealthCheck))


def subjects() -> dict:
    """Column name -> (Subject, bug, source): the controls first, then the mutants."""
    from bn_invariants.invariants.subjects import REFERENCE_SUBJECT, Subject
    from bn_invariants import zoo
    table = {"ReferenceBatchNorm": (REFERENCE_SUBJECT, CONTROL_BUG,
                                    "invariants/reference.py: the float64 oracle")}
    for cls in zoo.CONTROLS + zoo.MUTANTS:
        bug = CONTROL_BUG if cls in zoo.CONTROLS else cls.BUG
        table[cls.__name__] = (Subject(zoo.spec(cls), cls), bug, cls.SOURCE)
    table.update(distributed_subjects())
    controls = [n for n, (_, bug, _) in table.items() if bug == CONTROL_BUG]
    return {n: table[n] for n in controls + [n for n in table if n not in controls]}


def distributed_subjects() -> dict:
    """The distributed columns: the reference (a control) and the distributed mutants."""
    from bn_invariants import zoo
    from bn_invariants.invariants.distributed.subjects import REFERENCE_DIST_SUBJECT, dist_subject
    from bn_invariants.zoo.distributed import DIST_MUTANTS
    table = {"AllReduceBatchNorm": (REFERENCE_DIST_SUBJECT, CONTROL_BUG, "invariants/distributed/"
                                    "reference.py: the all-reduce reference")}
    for cls in DIST_MUTANTS:
        table[cls.__name__] = (dist_subject(zoo.spec(cls)), cls.BUG, cls.SOURCE)
    return table


def space_of(subject, invariant):
    """The space ``invariant`` draws from for ``subject`` on the CPU, or None when they
    are of different kinds (a distributed invariant needs a distributed subject)."""
    from bn_invariants.invariants.coverage import probe
    from bn_invariants.invariants.distributed.subjects import DistSubject
    distributed = isinstance(subject, DistSubject)
    if distributed != (invariant.kind == "distributed"):
        return None
    return subject.space() if distributed else probe(subject, "cpu")


@dataclass
class Counting:
    """A Target that counts the examples checked until the first failure."""

    target: object
    checked: int = 0
    first_failure: int | None = None

    def cases(self):
        return self.target.cases()

    def long_cases(self):
        return self.target.long_cases()

    def check(self, case):
        self.checked += 1
        try:
            self.target.check(case)
        except Exception:
            if self.first_failure is None:
                self.first_failure = self.checked
            raise


def classify(error) -> str:
    """The cell's verdict for what find_violation returned."""
    from bn_invariants.invariants import Unsupported
    if error is None:
        return "passed"
    if isinstance(error, Unsupported):
        return "unsupported"
    return "caught"


def run_cell(name: str, invariant_id: str, max_examples: int = MAX_EXAMPLES) -> dict:
    """Run one invariant against one subject; verdict, first failing example, seconds."""
    from bn_invariants import invariants
    from bn_invariants.invariants.runner import find_violation, target_for
    subject = subjects()[name][0]
    invariant = invariants.REGISTRY[invariant_id]
    space = space_of(subject, invariant)
    target = target_for(invariant, subject, space) if space is not None else None
    if target is None or not target.space:
        return {"verdict": "n/a", "first_failure": None, "seconds": 0.0, "error": None}
    counting = Counting(target)
    start = time.perf_counter()
    error = find_violation(counting, search_settings(max_examples))
    verdict = classify(error)
    return {"verdict": verdict, "first_failure": counting.first_failure if verdict == "caught" else None,
            "seconds": round(time.perf_counter() - start, 2),
            "error": None if error is None else f"{type(error).__name__}: {str(error)[:300]}"}


def _one_thread():
    """Each worker process gets one torch thread: jobs x threads must not exceed the cores."""
    import torch
    torch.set_num_threads(1)


def _cell(args):
    name, invariant_id, max_examples = args
    return name, invariant_id, run_cell(name, invariant_id, max_examples)


def run(names, invariant_ids, jobs: int, max_examples: int) -> dict:
    """{name: {invariant: cell}} for every pair, in ``jobs`` processes."""
    work = [(n, i, max_examples) for n in names for i in invariant_ids]
    cells: dict = {n: {} for n in names}
    done = 0
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_one_thread) as pool:
            results = pool.map(_cell, work)
            for name, inv, cell in results:
                cells[name][inv] = cell
                done += 1
                _progress(done, len(work), name, inv, cell)
    else:
        for args in work:
            name, inv, cell = _cell(args)
            cells[name][inv] = cell
            done += 1
            _progress(done, len(work), name, inv, cell)
    return cells


def _progress(done, total, name, inv, cell):
    print(f"[{done}/{total}] {name} × {inv}: {cell['verdict']} ({cell['seconds']}s)"
          + (f" at example {cell['first_failure']}" if cell["first_failure"] else ""),
          file=sys.stderr, flush=True)


def only_caught_by(matrix: dict, mutants) -> dict:
    """invariant -> the mutants it alone catches."""
    unique: dict = {}
    for m in mutants:
        catchers = [i for i, v in matrix[m].items() if v == "caught"]
        if len(catchers) == 1:
            unique.setdefault(catchers[0], []).append(m)
    return {i: sorted(ms) for i, ms in sorted(unique.items())}


def report(cells: dict, previous: dict | None, invariant_ids, max_examples: int) -> dict:
    """The JSON document, merging ``cells`` over ``previous``."""
    import torch
    table = subjects()
    matrix = {n: dict((previous or {}).get("matrix", {}).get(n, {})) for n in table}
    for name, row in cells.items():
        for inv, cell in row.items():
            matrix[name][inv] = cell["verdict"]
    matrix = {n: {i: matrix[n][i] for i in invariant_ids if i in matrix[n]} for n in table}
    mutants = [n for n, (_, bug, _) in table.items() if bug != CONTROL_BUG]
    return {
        "profile": "ci",
        "max_examples": max_examples,
        "torch": torch.__version__,
        "mutants": {n: {"module": s.name if ":" in s.name else "bn_invariants.invariants.reference:ReferenceBatchNorm",
                        "bug": bug, "source": source} for n, (s, bug, source) in table.items()},
        "matrix": matrix,
        "only_caught_by": only_caught_by(matrix, mutants),
    }


FIGURE = "img/kill_matrix.png"
"""The heatmap of the matrix (drawn by ``python3 -m tools.plots``), relative to docs/."""


def quickest(ttd: dict | None) -> dict:
    """mutant -> its quickest catcher's row in the time-to-detect document (rows are
    ordered quickest first within each mutant); {} without the document."""
    first: dict = {}
    for row in (ttd or {}).get("rows", []):
        if row.get("caught"):
            first.setdefault(row["mutant"], row)
    return first


def figure_stamp(doc: dict, ttd: dict | None) -> str:
    """A digest of everything the heatmap shows: the verdicts, the column order and
    each mutant's quickest catcher. The figure carries it; a test compares."""
    import hashlib
    shown = {"matrix": doc["matrix"], "controls": controls_of(doc),
             "quickest": {m: r["invariant"] for m, r in sorted(quickest(ttd).items())}}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]


def controls_of(doc: dict) -> list[str]:
    """The control columns (correct implementations), in the document's order."""
    return [n for n in doc["matrix"] if doc["mutants"].get(n, {}).get("bug") == CONTROL_BUG]


def short(name: str) -> str:
    """A zoo class name without its ``BatchNorm`` suffix."""
    return name.removesuffix("BatchNorm")


def markdown(doc: dict, ttd: dict | None = None) -> str:
    """docs/kill-matrix.md from the kill-matrix document and, for the quickest catcher
    of each mutant, the time-to-detect document (docs/data/time_to_detect.json)."""
    names = list(doc["matrix"])
    invariant_ids = sorted({i for row in doc["matrix"].values() for i in row})
    controls = controls_of(doc)
    mutants = [n for n in names if n not in controls]
    first = quickest(ttd)
    unique = doc.get("only_caught_by") or only_caught_by(doc["matrix"], mutants)
    lines = [
        "<!-- Generated by `python3 -m tools.gen_docs` from docs/data/kill_matrix.json and "
        "docs/data/time_to_detect.json. Do not edit. -->",
        "",
        "# Kill matrix",
        "",
        f"Every registered invariant ({len(invariant_ids)}) against every deliberately broken "
        f"batch norm of the zoo (`bn_invariants/zoo`, {len(mutants)} mutants, one bug each) and "
        f"{len(controls)} correct controls, on the CPU, with the `{doc.get('profile', 'ci')}` "
        f"profile's search ({doc.get('max_examples', MAX_EXAMPLES)} derandomized examples"
        + (f", torch {doc['torch']}" if doc.get("torch") else "") + "). "
        "Regenerate this page, the [time to detect](time-to-detect.md) and the figure "
        "with `nice -n 5 python3 -m tools.detection` (several minutes on 2 cores).",
        "",
        f"[![Kill matrix: one row per invariant, grouped by family, one column per mutant; "
        f"a filled cell means the invariant catches the mutant, a ring marks each mutant's "
        f"quickest catcher; the controls, in the first columns, pass everything]({FIGURE})]"
        f"({FIGURE})",
        "",
        "Each filled cell: the invariant catches the mutant. Each ring: the mutant's quickest "
        "catcher. Click the figure for full size.",
        "",
        "## Each mutant and what catches it",
        "",
        "The quickest catcher is the one that fails on the fewest examples (ties: the smaller "
        "shrunk counterexample), from the [time-to-detect](time-to-detect.md) run, which also "
        "gives the seconds and the shrunk counterexample of every catcher.",
        "",
        "| mutant | quickest catcher | examples to first failure | caught by |",
        "|---|---|---|---|",
    ]
    for n in mutants:
        catchers = [i for i in invariant_ids if doc["matrix"][n].get(i) == "caught"]
        row = first.get(n)
        fastest = f"`{row['invariant']}`" if row else "–"
        examples = str(row["examples_to_first_failure"]) if row else "–"
        caught = (f"{len(catchers)}: " + ", ".join(f"`{c}`" for c in catchers)
                  if catchers else "**none**")
        lines.append(f"| **{short(n)}** | {fastest} | {examples} | {caught} |")
    lines += ["", "Controls, which must pass every invariant: "
              + ", ".join(f"{short(n)} ({_caught_count(doc, n)} caught)" for n in controls) + ".",
              "", "## The mutants", ""]
    for n in mutants:
        info = doc["mutants"].get(n, {})
        lines.append(f"- **{short(n)}** (`{info.get('module', n)}`): {info.get('bug', '')}. "
                     f"Reported: {info.get('source', '')}.")
    raised = [r for r in (ttd or {}).get("rows", [])
              if r.get("caught") and r.get("error") not in (None, "InvariantViolation")]
    if raised:
        lines += ["", "## Caught by an exception rather than a violation", "",
                  "The subject raised while the invariant ran it: a failure in pytest too, "
                  "but not a property broken.", ""]
        lines += [f"- {short(r['mutant'])} × `{r['invariant']}`: {r['error']}" for r in raised]
    lonely = [i for i in invariant_ids if i not in unique]
    lines += ["", "## Invariants that alone catch a mutant", ""]
    lines += [f"- `{i}`: {', '.join(short(m) for m in unique[i])}" for i in unique] or ["- none"]
    lines += ["", "## Invariants with no unique mutant", "",
              "Each of these catches only mutants some other invariant also catches (or none); "
              "the sentence after each says why it is still worth its time.", ""]
    for i in lonely:
        caught = [short(n) for n in mutants if doc["matrix"][n].get(i) == "caught"]
        lines.append(f"- `{i}`: catches {', '.join(caught) or 'no mutant'}. "
                     f"{WORTH.get(i, '')}".rstrip())
    return "\n".join(lines) + "\n"


def _caught_count(doc: dict, name: str) -> int:
    return sum(v == "caught" for v in doc["matrix"][name].values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--mutants", default=None, help="comma-separated names: rerun only these")
    parser.add_argument("--invariants", default=None, help="comma-separated ids: rerun only these")
    parser.add_argument("--max-examples", type=int, default=MAX_EXAMPLES, metavar="N",
                        help=f"examples searched per cell (default {MAX_EXAMPLES}, the ci profile's)")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bn_invariants import invariants
    table = subjects()
    all_ids = sorted(invariants.REGISTRY)
    names = args.mutants.split(",") if args.mutants else list(table)
    ids = args.invariants.split(",") if args.invariants else all_ids
    unknown = [n for n in names if n not in table] + [i for i in ids if i not in invariants.REGISTRY]
    if unknown:
        parser.error(f"unknown mutant or invariant: {', '.join(unknown)}")
    partial = bool(args.mutants or args.invariants)
    previous = json.loads(JSON_PATH.read_text()) if partial and JSON_PATH.exists() else None
    cells = run(names, ids, args.jobs, args.max_examples)
    doc = report(cells, previous, all_ids, args.max_examples)
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    ttd_path = ROOT / "docs" / "data" / "time_to_detect.json"
    ttd = json.loads(ttd_path.read_text()) if ttd_path.exists() else None
    MD_PATH.write_text(markdown(doc, ttd))
    for name, row in cells.items():
        for inv, cell in row.items():
            if cell["verdict"] == "caught" and table[name][1] == CONTROL_BUG:
                print(f"CONTROL FAILED: {name} × {inv}: {cell['error']}", file=sys.stderr)
    print(f"wrote {JSON_PATH.relative_to(ROOT)} and {MD_PATH.relative_to(ROOT)}; next: "
          f"python3 -m tools.time_to_detect --jobs 2, python3 -m tools.plots, "
          f"python3 -m tools.gen_docs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
