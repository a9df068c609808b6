"""The catch rate: in how many seeded runs each invariant catches each zoo mutant.

The kill matrix and the time-to-detect table search once, derandomized; a run of the
suite with ``--hypothesis-profile=ci-seeded --hypothesis-seed=s`` draws other cases.
For each (mutant, catcher) row of the time-to-detect table (``tools.time_to_detect``
calls ``seeded_runs``), the search runs once per seed 0, 1, ..., SEEDS - 1, not
derandomized and without shrinking or the long cases, and the long cases, which every
run checks whatever its seed, run once.  A seeded run catches a mutant when the search
of one of its catchers does, or the long cases of one do.
"""
from __future__ import annotations

from dataclasses import dataclass

from tools.kill_matrix import MAX_EXAMPLES, classify, search_settings

SEEDS = 10
"""Seeded runs per (mutant, catcher), seeds 0 to SEEDS - 1."""


@dataclass
class SearchOnly:
    """A Target without its long cases: what the Hypothesis search alone finds."""

    target: object

    def cases(self):
        return self.target.cases()

    def long_cases(self):
        return ()

    def check(self, case):
        self.target.check(case)


def seeded_settings(max_examples: int = MAX_EXAMPLES):
    """The kill matrix's search, not derandomized (``ci-seeded``): a seed picks the draws."""
    from hypothesis import settings
    return settings(search_settings(max_examples), derandomize=False)


def seeded_runs(target, runs: int = SEEDS, max_examples: int = MAX_EXAMPLES) -> dict:
    """``{"search": the seeds whose search finds a violation, "long_case": whether the long
    cases do (None where the invariant has none)}`` for ``target`` over ``runs`` seeds."""
    from bn_invariants.invariants.runner import check_long_cases, find_violation
    search, settings = SearchOnly(target), seeded_settings(max_examples)
    caught = [s for s in range(runs)
              if classify(find_violation(search, settings, seed=s)) == "caught"]
    long_case = classify(check_long_cases(target)) == "caught" if target.long_cases() else None
    return {"search": caught, "long_case": long_case}


def runs_caught(rows, runs: int, *, long_cases: bool = True) -> int:
    """Of ``runs`` seeded runs, how many some row of ``rows`` catches (its search, or with
    ``long_cases``, its long cases)."""
    if long_cases and any(r["seeded"]["long_case"] for r in rows):
        return runs
    return len({s for r in rows for s in r["seeded"]["search"]})


def seeded_column(row: dict, runs: int) -> str:
    """The table cell: 'k/runs' by the search; 'runs/runs (long case; search k/runs)'."""
    searched = len(row["seeded"]["search"])
    if row["seeded"]["long_case"]:
        return f"{runs}/{runs} (long case; search {searched}/{runs})"
    return f"{searched}/{runs}"


def catch_rate_lines(doc: dict) -> list[str]:
    """The page's catch-rate section: per mutant, the seeded runs that catch it, by the
    search alone, and which catchers catch it in every run or only in some."""
    runs = doc["seeded_runs"]
    lines = ["## Catch rate", "",
             (f"Each catcher searched again with seeds 0 to {runs - 1} (`ci-seeded`: the same "
              f"search, not derandomized, {doc['max_examples']} examples, no shrinking), and its "
              "long cases checked once: they are the same in every run. A run catches the "
              "mutant when one catcher's search or long cases do. Only the catchers of the "
              "derandomized search (the kill matrix's, and CAUGHT_BY) are searched again."), "",
             "| mutant | runs that catch it | by the search alone | catchers in every run "
             "| catchers in some runs |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["mutant"] for r in doc["rows"]):
        rows = [r for r in doc["rows"] if r["mutant"] == name]
        always = [r["invariant"] for r in rows if runs_caught([r], runs) == runs]
        some = [f"`{r['invariant']}` {runs_caught([r], runs)}/{runs}" for r in rows
                if 0 < runs_caught([r], runs) < runs]
        lines.append(f"| {name.removesuffix('BatchNorm')} | {runs_caught(rows, runs)}/{runs} | "
                     f"{runs_caught(rows, runs, long_cases=False)}/{runs} | {len(always)} | "
                     f"{', '.join(some) or '–'} |")
    return lines + [""]
