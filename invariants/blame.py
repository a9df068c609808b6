"""Whose exception is it: the subject's, or the suite's own?

An exception raised while checking an invariant is the subject's when it was raised
below the suite, in the subject's code or in torch called by it (its forward, its
backward, its constructor); it is the suite's when the innermost Python frame is
the suite's own code, which then has a bug: it must never be reported as the subject's.
"""
from __future__ import annotations

import os
import traceback

_SUITE_DIRS = tuple(os.path.realpath(os.path.join(os.path.dirname(__file__), *parts)) + os.sep
                    for parts in ((), ("..", "strategies"), ("..", "bn_invariants")))


def is_suite_file(filename: str) -> bool:
    """Whether ``filename`` is part of the suite (invariants, strategies, the plugin).
    The zoo is not: its batch norms are subjects like any other."""
    path = os.path.realpath(filename)
    return path.startswith(_SUITE_DIRS) and f"{os.sep}zoo{os.sep}" not in path


def raised_by_suite(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is the suite's own code."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and is_suite_file(frames[-1].filename)


def describe(exc: BaseException) -> str:
    """'TypeError: message' on one line, shortened."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}{'…' if len(text) > 200 else ''}"
