"""Regenerate everything that measures detection, in order, in one command:

    nice -n 5 python3 -m tools.detection [--jobs 2] [--seeds 10]

1. ``python3 -m tools.kill_matrix --jobs J``: every invariant against every subject
   (docs/data/kill_matrix.json, docs/kill-matrix.md);
2. ``python3 -m tools.time_to_detect --jobs J --seeds K``: each mutant's catchers, the
   examples and seconds to the first failure, the shrunk counterexample and the catch
   rate over K seeded runs (docs/data/time_to_detect.json, docs/time-to-detect.md);
3. ``python3 -m tools.plots``: the figures (docs/img/; an unchanged one is not rewritten);
4. ``python3 -m tools.gen_docs``: the catalogue and the kill-matrix page, which read both.

Each step is its own process, as when run by hand (Hypothesis mixes literal constants
from the loaded modules into its draws, so the counts depend on what is imported).  Each
step's wall time is printed; a step that fails stops the run.  Rerun after any change to
an invariant, a bound, a strategy or the zoo, and commit docs/.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from tools.catch_rate import SEEDS

ROOT = Path(__file__).resolve().parent.parent


def steps(jobs: int, seeds: int) -> list[list[str]]:
    """The command lines, in order."""
    python = [sys.executable, "-m"]
    return [python + ["tools.kill_matrix", "--jobs", str(jobs)],
            python + ["tools.time_to_detect", "--jobs", str(jobs), "--seeds", str(seeds)],
            python + ["tools.plots"],
            python + ["tools.gen_docs"]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seeds", type=int, default=SEEDS,
                        help=f"seeded runs per catcher for the catch rate (default {SEEDS})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    for command in steps(args.jobs, args.seeds):
        name = command[2]
        began = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, check=False)
        print(f"{name}: {time.perf_counter() - began:.0f} s wall, exit {done.returncode}",
              file=sys.stderr, flush=True)
        if done.returncode:
            return done.returncode
    print(f"detection docs regenerated in {time.perf_counter() - started:.0f} s wall",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
