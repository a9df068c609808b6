"""Known deviations of torch's batch norm found by the scale-invariant-weights family."""
from __future__ import annotations

from bn_invariants.invariants.catalogue.precision import record_half_backward_overflow
from bn_invariants.invariants.registry import Case
from bn_invariants.invariants.subjects import TORCH_FACTORIES
from bn_invariants.strategies import Problem

record_half_backward_overflow(
    "weight-gradient-inverse-scale",
    [(TORCH_FACTORIES, Case(
        problem=Problem(shape=(2, 3, 224, 224), dtype="float16", layout="channels_last",
                        regime="heavy_tails", severity=0.5625, seed=0),
        params={"scale": 4.0}))],
    measured=("4 dl/dW(4W; 16 eps) is NaN in 3 of 9 elements (expected 283, 26.25, 156.75; "
              "tolerance finite): every one of the 100352 dl/dx of channel 0 is NaN, where the "
              "float64 closed form has |dl/dx| <= 0.0245; the unscaled run and the reference "
              "subject pass"),
)


record_half_backward_overflow(
    "weight-norm-nondecreasing",
    [(TORCH_FACTORIES, Case(
        problem=Problem(shape=(100000, 2), dtype="float16", layout="strided",
                        regime="heavy_tails", severity=0.75, seed=0),
        params={"steps": 1, "lr": 0.5}))],
    measured=("dl/dW is NaN in row 1 (the reference subject gives [-92.8, 52.6]), so the norm "
              "identity reads NaN: channel 1 of W u has var 2.1e4, |x| <= 2254 and "
              "sum g (x - mu) = 6.9e4 > 65504; channel 0 (sum 3.5e3) is fine"),
)
