"""Time to detect: how soon the suite catches each broken batch norm, and how small the
counterexample it reports.

For every zoo mutant (bn_invariants/zoo, the distributed ones included) and every invariant the kill matrix
(docs/data/kill_matrix.json) records as catching it, or its CAUGHT_BY names, runs
the ``ci`` profile's search (derandomized, 30 examples, no database, no deadline) on
the CPU *with* the shrink phase, and records the examples and seconds to the first failure, the
seconds including shrinking, and the shrunk counterexample (or, where only the long
cases every run checks catch it, that long case: ``found_by``).  Each search runs
twice in the same process and the second is timed (the first pays one-time
imports); both must find the same thing.

Then the catch rate: the same search ``--seeds`` times (default 10), seeded 0, 1, ...
and not derandomized (the ``ci-seeded`` profile, as ``pytest --hypothesis-seed=s``
draws), without shrinking, and the long cases once (they are the same in every run).
A seeded run catches the mutant when its search does or the long cases do.  Writes

* docs/data/time_to_detect.json: {"profile", "max_examples", "phases", "seeded_runs",
  "torch", "hypothesis", "machine", "date", "rows"}, one row per (mutant, catcher),
  each with ``seeded``: {"search": the seeds whose search caught it, "long_case":
  whether the long cases catch it (None: the invariant has none)};
* docs/time-to-detect.md: rendered from that JSON alone (``markdown(doc)``).

Usage, from the repository root (a few minutes with two workers)::

    python3 -m tools.time_to_detect [--jobs 2] [--mutants A,B] [--seeds 10]

With ``--mutants`` only those mutants are rerun and merged into the existing JSON.
Everything but the timing columns and the date is deterministic: the search is
derandomized and shrinking is deterministic given the examples it starts from.  (A
derandomized search still depends on which of the project's modules are loaded:
Hypothesis mixes literal constants from them into its draws, so the counts here can
differ a little from the kill matrix's and from pytest's.)
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tools.catch_rate import SEEDS, catch_rate_lines, seeded_column, seeded_runs
from tools.kill_matrix import JSON_PATH as KILL_MATRIX_PATH
from tools.kill_matrix import (
    MAX_EXAMPLES,
    Counting,
    _one_thread,
    classify,
    search_settings,
    space_of,
    subjects,
)

ROOT = Path(__file__).resolve().parent.parent
JSON_PATH = ROOT / "docs" / "data" / "time_to_detect.json"
MD_PATH = ROOT / "docs" / "time-to-detect.md"
PHASES = ("explicit", "reuse", "generate", "shrink")
"""The ``ci`` profile's phases less ``explain``, which only annotates the report and
does not change the shrunk counterexample."""
MACHINE = "2 CPU cores, one torch thread per worker process"
TIMING_KEYS = ("seconds_to_first_failure", "seconds_with_shrinking")
"""The row fields that vary from run to run; everything else is deterministic."""


def shrink_settings(max_examples: int = MAX_EXAMPLES):
    """The kill matrix's ``ci`` search with the shrink phase added."""
    from hypothesis import Phase, settings
    return settings(search_settings(max_examples), phases=[Phase[p] for p in PHASES])


@dataclass
class Recording(Counting):
    """A Counting target that also times the first failure and remembers the last
    failing case: Hypothesis replays the shrunk example last, so that is it."""

    started: float = field(default_factory=time.perf_counter)
    seconds_to_first_failure: float | None = None
    last_failing: object = None
    last_in_search: bool = False
    """Whether the last failing case was drawn by Hypothesis (else: a long case)."""

    def check(self, case):
        from hypothesis import currently_in_test_context
        try:
            super().check(case)
        except Exception:
            if self.seconds_to_first_failure is None:
                self.seconds_to_first_failure = time.perf_counter() - self.started
            self.last_failing = case
            self.last_in_search = currently_in_test_context()
            raise


def jsonable(value):
    """``value`` as plain JSON: numbers, strings, lists and dicts; anything else by repr."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return repr(value)


def describe(case) -> dict:
    """The shrunk counterexample: its Problem's shape, numel, dtype, layout, regime,
    seed, cotangent regime, options, and the invariant's params."""
    problem = case.problem
    shape = tuple(problem.shape)
    return {"shape": list(shape), "numel": math.prod(shape), "dtype": problem.dtype,
            "layout": problem.layout, "regime": problem.regime, "severity": problem.severity,
            "seed": problem.seed, "cotangent_regime": problem.cotangent_regime,
            "options": jsonable(vars(problem.options)),
            "params": jsonable(dataclasses.asdict(case.params)), "repr": repr(case)}


def replayed_last(error, case) -> bool:
    """Whether ``case`` is the one Hypothesis reported: its final replay notes
    ``reproduce: <case>`` (invariants.runner.Target.check) on the exception."""
    return f"reproduce: {case!r}" in getattr(error, "__notes__", ())


def reported(error, case, found_by: str) -> bool:
    """Whether ``case`` is the one the search reports: the one Hypothesis replayed last,
    or the long case the exception was raised for (``reproduction``, Target.check)."""
    if found_by == "search":
        return replayed_last(error, case)
    return getattr(error, "reproduction", None) == case


def search_once(target, max_examples: int = MAX_EXAMPLES) -> dict:
    """One shrinking search of ``target``: what it found and how long it took."""
    from bn_invariants.invariants.runner import find_violation
    recording = Recording(target)
    error = find_violation(recording, shrink_settings(max_examples))
    total = time.perf_counter() - recording.started
    caught = classify(error) == "caught" and recording.last_failing is not None
    found_by = ("search" if recording.last_in_search else "long case") if caught else None
    return {"caught": caught,
            "examples_to_first_failure": recording.first_failure,
            "seconds_to_first_failure": _round(recording.seconds_to_first_failure),
            "seconds_with_shrinking": _round(total),
            "error": None if error is None else type(error).__name__,
            "found_by": found_by,
            "counterexample": describe(recording.last_failing) if caught else None,
            "reported": reported(error, recording.last_failing, found_by) if caught else None}


def run_cell(name: str, invariant_id: str, max_examples: int = MAX_EXAMPLES,
             seeds: int = SEEDS) -> dict:
    """Search one mutant with one invariant, shrinking, twice, then ``seeds`` seeded
    runs: the row for the table.

    The first search pays the process's one-time costs (lazy imports, Hypothesis's
    first scan of the project's modules), so the timings come from the second;
    ``repeatable`` says whether both found the same thing."""
    from bn_invariants import invariants
    from bn_invariants.invariants.runner import target_for
    subject = subjects()[name][0]
    invariant = invariants.REGISTRY[invariant_id]
    target = target_for(invariant, subject, space_of(subject, invariant))
    cold, warm = search_once(target, max_examples), search_once(target, max_examples)
    return {"mutant": name, "invariant": invariant_id, **warm,
            "repeatable": untimed(cold) == untimed(warm),
            "seeded": seeded_runs(target, seeds, max_examples)}


def untimed(row: dict) -> dict:
    """``row`` without its timing fields: what must not change from run to run."""
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}


def _round(seconds):
    return None if seconds is None else round(seconds, 3)


def _cell(args):
    return run_cell(*args)


def catchers(kill_matrix: dict, mutants) -> list[tuple[str, str]]:
    """(mutant name, invariant) for each zoo class in ``mutants`` and each invariant that
    catches it: the kill matrix's caught cells plus the class's own CAUGHT_BY (all a
    mutant the kill matrix does not know yet has)."""
    work = []
    for cls in mutants:
        row = kill_matrix["matrix"].get(cls.__name__, {})
        ids = {i for i, v in row.items() if v == "caught"} | set(cls.CAUGHT_BY)
        work += [(cls.__name__, i) for i in sorted(ids)]
    return work


def run(work, jobs: int, max_examples: int, seeds: int = SEEDS) -> list[dict]:
    """One row per (mutant, invariant) in ``work``, in ``jobs`` processes."""
    args = [(n, i, max_examples, seeds) for n, i in work]
    rows = []
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_one_thread) as pool:
            for row in pool.map(_cell, args):
                rows.append(row)
                _progress(len(rows), len(args), row)
    else:
        _one_thread()
        for a in args:
            rows.append(_cell(a))
            _progress(len(rows), len(args), rows[-1])
    return rows


def _progress(done, total, row):
    ce = row["counterexample"]
    print(f"[{done}/{total}] {row['mutant']} × {row['invariant']}: "
          f"first failure at {row['examples_to_first_failure']} "
          f"({row['seconds_to_first_failure']}s), {row['seconds_with_shrinking']}s with "
          f"shrinking, found by {row['found_by']}, shape {ce and ce['shape']}, seeded search "
          f"caught {len(row['seeded']['search'])}, long case {row['seeded']['long_case']}",
          file=sys.stderr, flush=True)


def all_mutants() -> tuple:
    """Every zoo mutant: the single-process ones, then the distributed ones."""
    from bn_invariants import zoo
    from bn_invariants.zoo.distributed import DIST_MUTANTS
    return tuple(zoo.MUTANTS) + DIST_MUTANTS


def order(rows) -> list[dict]:
    """Rows grouped by mutant in zoo order; within a mutant, fewest examples to the
    first failure first, then the smaller shrunk counterexample, then the id (all
    deterministic, so the order does not move with the timings)."""
    rank = {cls.__name__: k for k, cls in enumerate(all_mutants())}

    def key(row):
        ce = row["counterexample"]
        return (rank.get(row["mutant"], len(rank)), row["mutant"], not row["caught"],
                row["examples_to_first_failure"] or 0, ce["numel"] if ce else 0, row["invariant"])
    return sorted(rows, key=key)


def document(rows, previous: dict | None, max_examples: int, seeds: int = SEEDS) -> dict:
    """The JSON document: this run's rows merged over ``previous``'s other mutants."""
    import hypothesis
    import torch
    rerun = {r["mutant"] for r in rows}
    kept = [r for r in (previous or {}).get("rows", []) if r["mutant"] not in rerun]
    return {"profile": "ci", "max_examples": max_examples, "phases": list(PHASES),
            "seeded_runs": seeds, "torch": torch.__version__, "hypothesis": hypothesis.__version__,
            "machine": MACHINE, "date": datetime.date.today().isoformat(),
            "rows": order(kept + rows)}


def summary(doc: dict) -> dict:
    """Median and max of examples and seconds to the first failure, over every caught
    row and over each mutant's first row; the largest shrunk counterexamples, overall
    and apart from the strategy's long-reduction draw (which cannot shrink shorter); the
    rows only a long case catches (not shrunk)."""
    caught = [r for r in doc["rows"] if r["caught"]]
    firsts = list({r["mutant"]: r for r in reversed(caught)}.values())

    def stats(rows, key):
        values = [r[key] for r in rows if r[key] is not None]
        return {"median": statistics.median(values), "max": max(values)} if values else None

    def largest(rows):
        return max(rows, key=lambda r: (r["counterexample"]["numel"], r["mutant"], r["invariant"]),
                   default=None)
    shrunk = [r for r in caught if r["found_by"] == "search"]
    short = [r for r in shrunk if not is_long(r["counterexample"])]
    return {"rows": len(doc["rows"]), "caught": len(caught), "mutants": len(firsts),
            "examples": stats(caught, "examples_to_first_failure"),
            "seconds": stats(caught, "seconds_to_first_failure"),
            "seconds_with_shrinking": stats(caught, "seconds_with_shrinking"),
            "first_row_examples": stats(firsts, "examples_to_first_failure"),
            "largest": largest(shrunk), "largest_short": largest(short),
            "long_case_only": [r for r in caught if r["found_by"] == "long case"]}


def is_long(counterexample: dict) -> bool:
    """Whether a counterexample is the strategy's long-reduction draw (LONG_REDUCTION
    values per channel or more), whose length shrinking cannot lower."""
    from bn_invariants.strategies.shapes import LONG_REDUCTION, reduction_length
    return reduction_length(counterexample["shape"]) >= LONG_REDUCTION


def _case_text(row) -> str:
    ce = row["counterexample"]
    return (f"{ce['numel']} elements, shape {_shape(ce)} {ce['dtype']} "
            f"({row['mutant']} × `{row['invariant']}`)")


def _shape(ce) -> str:
    return "(" + ", ".join(map(str, ce["shape"])) + ("," if len(ce["shape"]) == 1 else "") + ")"


def markdown(doc: dict) -> str:
    """docs/time-to-detect.md, from the JSON document alone."""
    from bn_invariants.strategies.shapes import LONG_REDUCTION
    s = summary(doc)
    lines = [
        "# Time to detect",
        "",
        ("Generated by `python3 -m tools.time_to_detect --jobs 2` (with the kill matrix "
         "and the figures: `python3 -m tools.detection`); do not edit. For each "
         "broken implementation in the zoo (`bn_invariants/zoo`) and each invariant the "
         "[kill matrix](kill-matrix.md) records as catching it: the examples and seconds the "
         f"`{doc['profile']}` profile's search ({doc['max_examples']} derandomized examples, "
         f"no database, no deadline, phases {', '.join(doc['phases'])}) takes to the first "
         "failure on the CPU, the seconds including shrinking, and the shrunk "
         "counterexample Hypothesis reports (or, where the search finds nothing, the long "
         "case every run checks that catches it: *found by* long case, not shrunk). Then "
         f"the catch rate: how many of {doc['seeded_runs']} seeded runs catch each mutant."),
        "",
        (f"torch {doc['torch']}, hypothesis {doc['hypothesis']}; {doc['machine']}; "
         f"{doc['date']}. Seconds are wall-clock, from the second of two identical searches "
         "in the same process (the first pays one-time imports), and vary from run to run; "
         "everything else is deterministic. (Hypothesis mixes literal constants from the "
         "project's loaded modules into its draws, so the counts can differ a little from "
         "the kill matrix's and from pytest's.)"),
        "",
        "## Summary",
        "",
    ]
    if s["examples"]:
        lines += [
            (f"- {s['caught']} of {s['rows']} (mutant, catcher) pairs caught, over "
             f"{s['mutants']} mutants."),
            (f"- Examples to the first failure: median {s['examples']['median']:g}, "
             f"max {s['examples']['max']}; for each mutant's first row (its quickest "
             f"catcher): median {s['first_row_examples']['median']:g}, "
             f"max {s['first_row_examples']['max']}."),
            (f"- Seconds to the first failure: median {s['seconds']['median']:.3f}, "
             f"max {s['seconds']['max']:.3f}; with shrinking: median "
             f"{s['seconds_with_shrinking']['median']:.3f}, "
             f"max {s['seconds_with_shrinking']['max']:.3f}."),
            f"- Largest shrunk counterexample: {_case_text(s['largest'])}.",
        ]
        if s["long_case_only"]:
            lines.append("- Found only by the long cases every run checks (not shrunk): "
                         f"{_pairs(s['long_case_only'])}.")
        if s["largest_short"] is not s["largest"] and s["largest_short"]:
            lines.append("- Largest apart from the strategy's long-reduction draw (one length, "
                         f"{LONG_REDUCTION:,} values per channel, that shrinking cannot lower): "
                         f"{_case_text(s['largest_short'])}.")
    missed = [r for r in doc["rows"] if not r["caught"]]
    if missed:
        lines.append("- Not caught in this run (the kill matrix or CAUGHT_BY says they should "
                     f"be): {_pairs(missed)}.")
    unrepeatable = [r for r in doc["rows"] if not r["repeatable"]]
    if unrepeatable:
        lines.append(f"- Two identical searches disagreed: {_pairs(unrepeatable)}.")
    lines += [""] + catch_rate_lines(doc)
    lines += [("Within each mutant, rows are ordered by examples to the first failure, "
                   "then by the size of the shrunk counterexample, then by invariant id; the "
                   "first row is the mutant's quickest catcher."), ""]
    for name in dict.fromkeys(r["mutant"] for r in doc["rows"]):
        lines += [f"## {name}", "",
                  ("| mutant | invariant | examples to first failure | seconds to first "
                   "failure | seconds with shrinking | found by | shrunk shape | elements | "
                   "dtype | seeded runs caught |"),
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [_table_row(r, doc["seeded_runs"]) for r in doc["rows"] if r["mutant"] == name]
        lines.append("")
    return "\n".join(lines)


def _pairs(rows) -> str:
    return ", ".join(f"{r['mutant']} × `{r['invariant']}`" for r in rows)


def _table_row(r: dict, runs: int) -> str:
    ce = r["counterexample"]
    shrunk = ([r["found_by"], _shape(ce), str(ce["numel"]), ce["dtype"]] if ce
              else ["not caught", "–", "–", "–"])
    first, seconds = r["examples_to_first_failure"], r["seconds_to_first_failure"]
    cells = [r["mutant"].removesuffix("BatchNorm"), f"`{r['invariant']}`",
             "–" if first is None else str(first),
             "–" if seconds is None else f"{seconds:.3f}",
             f"{r['seconds_with_shrinking']:.3f}", *shrunk, seeded_column(r, runs)]
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--mutants", default=None, help="comma-separated names: rerun only these")
    parser.add_argument("--max-examples", type=int, default=MAX_EXAMPLES, metavar="N",
                        help=f"examples searched per cell (default {MAX_EXAMPLES}, the ci profile's)")
    parser.add_argument("--seeds", type=int, default=SEEDS, metavar="K",
                        help=f"seeded runs per row for the catch rate (default {SEEDS})")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    by_name = {cls.__name__: cls for cls in all_mutants()}
    names = args.mutants.split(",") if args.mutants else list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"unknown mutant: {', '.join(unknown)}")
    kill_matrix = json.loads(KILL_MATRIX_PATH.read_text())
    for name in (n for n in names if n not in kill_matrix["matrix"]):
        print(f"the kill matrix lacks {name}: only its CAUGHT_BY are run (rerun "
              f"python3 -m tools.kill_matrix, then this)", file=sys.stderr)
    previous = json.loads(JSON_PATH.read_text()) if args.mutants and JSON_PATH.exists() else None
    if previous and (previous.get("seeded_runs"), previous["max_examples"]) != (args.seeds,
                                                                                args.max_examples):
        parser.error("--mutants merges into a table with another --seeds or --max-examples: "
                     "rerun every mutant")
    rows = run(catchers(kill_matrix, [by_name[n] for n in names]), args.jobs,
               args.max_examples, args.seeds)
    doc = document(rows, previous, args.max_examples, args.seeds)
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    MD_PATH.write_text(markdown(doc))
    for r in rows:
        if not r["repeatable"]:
            print(f"NOT REPEATABLE: {r['mutant']} × {r['invariant']}: two identical searches "
                  f"found different things", file=sys.stderr)
        if not r["caught"]:
            print(f"NOT CAUGHT: {r['mutant']} × {r['invariant']}", file=sys.stderr)
        elif not r["reported"]:
            print(f"CAPTURE MISMATCH: {r['mutant']} × {r['invariant']}: the last failing case "
                  f"is not the one Hypothesis reported ({r['error']})", file=sys.stderr)
    print(f"wrote {JSON_PATH.relative_to(ROOT)} and {MD_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
