"""The catalogue: importing a module registers its invariants."""
from invariants.catalogue import bias_gradient, drift, shift  # noqa: F401
