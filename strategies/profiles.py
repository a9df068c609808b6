"""Hypothesis profiles, by name, for pytest, the tools and the benchmarks alike.

``dev`` (20 examples), ``ci`` (derandomized, no database, no deadline, prints blobs),
``ci-seeded`` (``ci`` with random seeds, for soaks) and ``thorough`` (2,000 examples).
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

QUIET_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large]
PROFILES = ("dev", "ci", "ci-seeded", "thorough")


def register_profiles() -> None:
    """Register the suite's profiles with Hypothesis (idempotent)."""
    settings.register_profile("dev", max_examples=20, deadline=None,
                              suppress_health_check=QUIET_CHECKS)
    settings.register_profile("ci", max_examples=30, derandomize=True, database=None,
                              deadline=None, print_blob=True, suppress_health_check=QUIET_CHECKS)
    settings.register_profile("ci-seeded", settings.get_profile("ci"), derandomize=False)
    settings.register_profile("thorough", max_examples=2000, deadline=None,
                              suppress_health_check=QUIET_CHECKS)


def profile(name: str, **overrides) -> settings:
    """The registered profile ``name`` as a settings object, with ``overrides``: how the
    tools, the benchmarks and the self-tests search ("the ci profile, 300 examples")."""
    if name not in PROFILES:
        raise ValueError(f"unknown Hypothesis profile {name!r}: one of {', '.join(PROFILES)}")
    return settings(settings.get_profile(name), **overrides)


def default_profile() -> str:
    """``ci`` when the CI environment variable is set, ``dev`` otherwise."""
    return "ci" if os.environ.get("CI") else "dev"


def current_profile() -> str:
    """The name of the loaded Hypothesis profile."""
    return settings.get_current_profile_name()


register_profiles()
