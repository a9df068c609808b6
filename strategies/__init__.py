"""Hypothesis strategies for batch-norm inputs.  Knows nothing of invariants."""
from bn_invariants.strategies.devices import available_devices, devices
from bn_invariants.strategies.dtypes import (DTYPE_NAMES, accumulation_dtype, dtypes, finfo, mantissa_bits,
                               max_offset_ratio, summation_factor, torch_dtype, ulp,
                               unit_roundoff)
from bn_invariants.strategies.layouts import LAYOUTS, apply_layout, layouts
from bn_invariants.strategies.options import BNOptions, bn_options
from bn_invariants.strategies.problems import Problem, exact_shift_grid, problems
from bn_invariants.strategies.regimes import REGIMES, regimes
from bn_invariants.strategies.shapes import RANKS, reduction_length, shapes

__all__ = [
    "DTYPE_NAMES", "LAYOUTS", "RANKS", "REGIMES", "BNOptions", "Problem",
    "accumulation_dtype", "apply_layout", "available_devices", "bn_options", "devices",
    "dtypes", "exact_shift_grid", "finfo", "layouts", "mantissa_bits", "max_offset_ratio", "problems",
    "reduction_length", "regimes", "shapes", "summation_factor", "torch_dtype",
    "ulp", "unit_roundoff",
]
