"""GPU sweep mode: many independent problems packed as the channels of one batch norm.

    python3 -m benchmarks.sweep --device cuda --channels 200000 --batch 64 --rounds 5

Each channel is one instance with its own scale and |mean|/std (log-uniform up to the
dtype's meaningful limit).  One call normalises them all; the float64 oracle and the
derived tolerances of invariants/tolerances.py then check every channel at once for
agreement with the reference, shift invariance and the zero bias gradient.  Prints
checked instances per second; exits 1 if any instance violates an invariant.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from bn_invariants.invariants.step import affine_of
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.subjects import BUILTIN_SUBJECTS, load_subject
from bn_invariants.invariants.bounds import gradient_sum_tolerance, output_tolerance
from bn_invariants.strategies import BNOptions, max_offset_ratio, torch_dtype


def packed_input(batch: int, channels: int, dtype: str, seed: int) -> torch.Tensor:
    """(batch, channels) float64 values, each channel an instance with its own
    scale (2**U(-8, 8)) and offset ratio (log-uniform in [0, max_offset_ratio])."""
    gen = torch.Generator().manual_seed(seed)
    scale = 2.0 ** (16 * torch.rand(channels, generator=gen, dtype=torch.float64) - 8)
    top = math.log(max_offset_ratio(dtype, batch))
    ratio = torch.exp(top * torch.rand(channels, generator=gen, dtype=torch.float64))
    sign = torch.where(torch.rand(channels, generator=gen) < 0.5, -1.0, 1.0).double()
    values = torch.randn(batch, channels, generator=gen, dtype=torch.float64)
    return ((values + sign * ratio) * scale).to(torch_dtype(dtype)).double()


def check_round(subject, *, device: str, dtype: str, batch: int, channels: int, seed: int):
    """One packed call: returns {invariant: violating channel count}."""
    x = packed_input(batch, channels, dtype, seed)
    stats = statistics(x, 1e-5)
    module = subject.build(channels, options=BNOptions(), device=device, dtype=torch_dtype(dtype))
    gamma, beta = affine_of(module, 2)
    x_dev = x.to(torch_dtype(dtype)).to(device).requires_grad_(True)
    y = module(x_dev)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    y.backward(g.to(y.dtype).to(device))
    y64, dx = y.detach().double().cpu(), x_dev.grad.double().cpu()
    expected = stats.xhat * gamma + beta
    out_tol = output_tolerance(dtype, stats, gamma, beta)
    grad_tol = gradient_sum_tolerance(dtype, stats,
                                      g.to(torch_dtype(dtype)).double(), gamma)
    return {
        "agrees-with-reference": int(((y64 - expected).abs() > out_tol).any(0).sum()),
        "input-gradient-sums-to-zero": int((dx.sum(0).abs() > grad_tol).sum()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        choices=("cpu", "cuda"),
                        help="where the subject runs (default cuda when present, else cpu)")
    parser.add_argument("--dtype", default="float32",
                        choices=("float32", "float64", "float16", "bfloat16"),
                        help="the input dtype (default float32)")
    parser.add_argument("--batch", type=int, default=64, metavar="N",
                        help="values per channel, the reduction length n (default 64)")
    parser.add_argument("--channels", type=int, default=20000, metavar="C",
                        help="instances packed as channels of one call (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, metavar="R",
                        help="packed calls, each with new values (default 3)")
    parser.add_argument("--subject", default="torch.nn.BatchNorm1d",
                        help="a built-in subject's name or package.module:Name")
    args = parser.parse_args(argv)
    builtin = {s.name: s for s in BUILTIN_SUBJECTS}
    subject = builtin.get(args.subject) or load_subject(args.subject, "--subject")
    violations, start = {}, time.perf_counter()
    for r in range(args.rounds):
        for key, count in check_round(subject, device=args.device, dtype=args.dtype,
                                      batch=args.batch, channels=args.channels, seed=r).items():
            violations[key] = violations.get(key, 0) + count
    elapsed = time.perf_counter() - start
    instances = args.rounds * args.channels
    print(f"sweep: {subject} on {args.device}, {args.dtype}, {args.rounds} rounds of "
          f"{args.channels} instances (n={args.batch} each)")
    print(f"  checked {instances} instances in {elapsed:.2f} s: {instances / elapsed:,.0f} "
          f"instances/s ({60 * instances / elapsed:,.0f} per minute)")
    for key, count in violations.items():
        print(f"  {key}: {count} violating instances")
    return 1 if any(violations.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
