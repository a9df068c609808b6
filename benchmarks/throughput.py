"""Examples per second per invariant, the generation/check split, and a naive baseline.

    python3 -m benchmarks.throughput [--examples 200] [--replicas 1 8]
                                     [--subject torch.nn.functional.batch_norm] [--only ids]

``x baseline`` is problems/s over the baseline's examples/s; with ``--replicas 1`` a
problem is an example.  The baseline is the obvious way to write the shift check: Hypothesis ``arrays()`` filled
elementwise, converted to torch, forward only.  Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from bn_invariants.strategies.profiles import profile
from bn_invariants import invariants
from bn_invariants.invariants.coverage import probe
from bn_invariants.invariants.runner import replica_count, target_for
from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS




def baseline_rate(examples: int) -> tuple[float, int, int]:
    """(examples/s, examples run, examples its fixed atol=1e-2 flags) of the obvious
    shift check: Hypothesis ``arrays()`` filled elementwise, forward only."""
    count, mismatches = [0], [0]

    @profile("ci", max_examples=examples)
    @given(arrays(np.float32, array_shapes(min_dims=2, max_dims=4, min_side=2, max_side=6),
                  elements=st.floats(-10, 10, width=32)),
           st.floats(-100, 100, width=32))
    def shift_check(x, b):
        count[0] += 1
        t = torch.from_numpy(x)
        y0 = F.batch_norm(t, None, None, training=True)
        y1 = F.batch_norm(t + b, None, None, training=True)
        mismatches[0] += not torch.allclose(y0, y1, atol=1e-2)  # counted, not asserted

    start = time.perf_counter()
    shift_check()
    return count[0] / (time.perf_counter() - start), count[0], mismatches[0]


def engine_floor(examples: int) -> float:
    """Examples/s of Hypothesis alone: one integer drawn, an empty test body."""
    count = [0]

    @profile("ci", max_examples=examples)
    @given(st.integers(0, 100))
    def empty(k):
        count[0] += 1

    start = time.perf_counter()
    empty()
    return count[0] / (time.perf_counter() - start)


def invariant_rate(target, examples: int):
    """(examples/s, problems/s, share of time in the check, violations) for one target.

    A violation is counted, not raised: a failing example would start Hypothesis's
    shrinker, which is not what this measures (pytest is where violations fail)."""
    count, problems, checking, violations = [0], [0], [0.0], []

    @profile("ci", max_examples=examples)
    @given(case=target.cases())
    def run(case):
        count[0] += 1
        problems[0] += replica_count(case, target.replicas)
        start = time.perf_counter()
        try:
            target.check(case)
        except invariants.Unsupported:
            pass
        except invariants.InvariantViolation as exc:
            violations.append(f"{str(exc).splitlines()[0][:200]} | {exc.reproduction!r}")
        finally:
            checking[0] += time.perf_counter() - start

    start = time.perf_counter()
    run()
    total = time.perf_counter() - start
    return count[0] / total, problems[0] / total, checking[0] / total, violations


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, metavar="N",
                        help="Hypothesis examples per measurement (default 200)")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 8], metavar="K",
                        help="problems per drawn example (see --bn-replicas); one table per "
                             "value (default 1 8)")
    names = [s.name for s in BUILTIN_SUBJECTS]
    parser.add_argument("--subject", default="torch.nn.functional.batch_norm", choices=names,
                        help="the built-in subject to measure (default "
                             "torch.nn.functional.batch_norm)")
    parser.add_argument("--only", nargs="*", metavar="ID",
                        help="measure only these invariant ids (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    subject = next(s for s in BUILTIN_SUBJECTS if s.name == args.subject)
    space = probe(subject, "cpu")
    print(f"Throughput on the CPU, one torch thread, {args.examples} examples per measurement.")
    base, ran, flagged = baseline_rate(args.examples)
    print(f"naive baseline: {base:8.1f} examples/s: the obvious shift check (Hypothesis "
          f"arrays() filled elementwise, forward only, fixed atol=1e-2, which flagged "
          f"{flagged} of its {ran} examples)")
    floor = engine_floor(args.examples)
    print(f"Hypothesis alone (one integer, empty test): {floor:8.1f} examples/s "
          f"= {floor / base:.2f}x baseline, the ceiling of one problem per example")
    for replicas in args.replicas:
        print(f"\n--replicas {replicas}: subject {subject}, {args.examples} examples each")
        print(f"{'invariant':40s} {'examples/s':>10s} {'problems/s':>10s} {'x baseline':>10s} "
              f"{'check':>6s} {'generate':>8s}")
        forward = []
        for inv in invariants.REGISTRY.values():
            if (args.only and inv.id not in args.only) or inv.kind != "single":
                continue  # the distributed family: benchmarks/distributed.py
            target = target_for(inv, subject, space, replicas=replicas)
            if not target.space:
                continue
            rate, checked, share, violations = invariant_rate(target, args.examples)
            forward += [checked / base] if inv.family.startswith("forward") else []
            print(f"{inv.id:40s} {rate:10.1f} {checked:10.1f} {checked / base:10.2f} "
                  f"{share:6.0%} {1 - share:8.0%}"
                  + (f"  VIOLATED {len(violations)}x: {violations[0]}" if violations else ""))
        if forward:
            print(f"forward invariants: problems/s from {min(forward):.2f}x to {max(forward):.2f}x "
                  f"baseline (median {statistics.median(forward):.2f}x)")


if __name__ == "__main__":
    main()
