"""bn-invariants: a property-based verification suite for batch normalization.

Three entry points, one registry:

* the pytest plugin: ``pytest --bn-impl=package.module:Name`` (``bn_invariants.plugin``);
* the Python API: ``check_batch_norm(Name)`` (``bn_invariants.api``);
* the command line: ``bn-invariants check package.module:Name`` (``bn_invariants.cli``).

Importing this package imports neither torch nor the registry; they load on first use.
"""
from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__", "check_batch_norm", "registry_hash"]


def registry_hash() -> str:
    """A short hash of the registry (ids, statements, tolerances, where each applies)
    and the known deviations: two runs with the same hash check the same things."""
    import hashlib

    from bn_invariants.invariants import REGISTRY
    from bn_invariants.invariants.known_deviations import DEVIATIONS
    digest = hashlib.sha256()
    for invariant in sorted(REGISTRY.values(), key=lambda i: i.id):
        digest.update(repr((invariant.id, invariant.statement, invariant.tolerance_formula,
                            invariant.dtypes, invariant.ranks, invariant.devices)).encode())
    for dev in DEVIATIONS:
        digest.update(repr((dev.invariant.id, dev.device, dev.dtypes, dev.region_text,
                            [f.__qualname__ for f in dev.factories], repr(dev.counterexample))
                           ).encode())
    return digest.hexdigest()[:12]


def __getattr__(name):
    if name == "check_batch_norm":  # lazily: importing the package must not import torch
        from bn_invariants.api import check_batch_norm
        return check_batch_norm
    raise AttributeError(f"module 'bn_invariants' has no attribute {name!r}")
