"""The cost of one distributed example against a single-process one, per invariant.

    python3 -m benchmarks.distributed [--examples 20] [--only distributed-forward ...]

Each distributed invariant is paired with its single-process counterpart, both run
against the float64-formula reference of their kind (the all-reduce reference on W
gloo workers; the float64 reference in this process), over the same number of
derandomized Hypothesis examples.  The worker pools (one per W) are started before timing
(their start is printed on its own): a pytest run pays it once per xdist worker.  Figures are
printed, never asserted.
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmarks.throughput import invariant_rate
from bn_invariants import invariants
from bn_invariants.invariants.coverage import probe
from bn_invariants.invariants.distributed.pool import shared_pool, stop_pools
from bn_invariants.invariants.distributed.subjects import REFERENCE_DIST_SUBJECT, WORLDS
from bn_invariants.invariants.runner import target_for
from bn_invariants.invariants.subjects import REFERENCE_SUBJECT

COUNTERPART = {
    "distributed-forward": "agrees-with-reference",
    "distributed-input-gradient": "input-gradient-closed-form",
    "distributed-parameter-gradients": "parameter-gradients",
    "distributed-running-stats": "running-stats-update",
    "distributed-eval-local": "eval-affine-map",
    "distributed-no-bias-drift": "no-bias-drift",
}
"""Each distributed invariant's single-process counterpart."""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20, metavar="N",
                        help="Hypothesis examples per measurement (default 20)")
    parser.add_argument("--only", nargs="*", metavar="ID", choices=sorted(COUNTERPART),
                        help="measure only these distributed invariant ids (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pools = [shared_pool(REFERENCE_DIST_SUBJECT.backend, world) for world in WORLDS]
    start = time.perf_counter()
    for pool in pools:
        pool.start()
    print(f"worker pools: W = {', '.join(map(str, WORLDS))}, {sum(WORLDS)} gloo workers, "
          f"started in {time.perf_counter() - start:.2f} s (once per pytest process); "
          f"{args.examples} examples per measurement, one torch thread per process")
    single_space = probe(REFERENCE_SUBJECT, "cpu")
    print(f"{'distributed invariant':34s} {'ms/example':>10s}   {'single-process counterpart':30s} "
          f"{'ms/example':>10s} {'ratio':>6s}")
    for dist_id, single_id in COUNTERPART.items():
        if args.only and dist_id not in args.only:
            continue
        dist = target_for(invariants.REGISTRY[dist_id], REFERENCE_DIST_SUBJECT,
                          REFERENCE_DIST_SUBJECT.space())
        single = target_for(invariants.REGISTRY[single_id], REFERENCE_SUBJECT, single_space)
        dist_rate, _, _, dist_violations = invariant_rate(dist, args.examples)
        single_rate, _, _, _ = invariant_rate(single, args.examples)
        print(f"{dist_id:34s} {1000 / dist_rate:10.1f}   {single_id:30s} "
              f"{1000 / single_rate:10.1f} {single_rate / dist_rate:6.1f}x"
              + (f"  VIOLATED: {dist_violations[0]}" if dist_violations else ""))
    stop_pools()


if __name__ == "__main__":
    main()
