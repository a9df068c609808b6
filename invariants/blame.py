"""Whose exception is it: the subject's, or the suite's own?

An exception raised while checking an invariant is the subject's when, below the
suite's last frame, it went through the subject: code that is neither the suite's nor
torch's (the subject's own), torch's module call machinery (a forward pass), or autograd
(a backward through the subject's graph).  A SubjectError (a constructor that raised) is
the subject's too.  Anything else, an exception in the suite's own code or in a torch
function the suite called directly, is a bug in the suite: it must never be reported as
the subject's.
"""
from __future__ import annotations

import os
import traceback

import torch

_SUITE_DIRS = tuple(os.path.realpath(os.path.join(os.path.dirname(__file__), *parts)) + os.sep
                    for parts in ((), ("..", "strategies"), ("..", "bn_invariants")))


def is_suite_file(filename: str) -> bool:
    """Whether ``filename`` is part of the suite (invariants, strategies, the plugin).
    The zoo is not: its batch norms are subjects like any other."""
    path = os.path.realpath(filename)
    return path.startswith(_SUITE_DIRS) and f"{os.sep}zoo{os.sep}" not in path


_TORCH = os.path.dirname(os.path.realpath(torch.__file__)) + os.sep
_THROUGH_SUBJECT = tuple(os.path.join(_TORCH, *parts) for parts in (
    ("nn", "modules", ""), ("autograd", ""), ("nn", "functional.py")))


def _through_subject(filename: str) -> bool:
    path = os.path.realpath(filename)
    return not path.startswith(_TORCH) or path.startswith(_THROUGH_SUBJECT)


def raised_by_suite(exc: BaseException) -> bool:
    """Whether ``exc`` is the suite's own (see the module's docstring)."""
    from bn_invariants.invariants.subjects import SubjectError
    if isinstance(exc, SubjectError):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    last = max((i for i, f in enumerate(frames) if is_suite_file(f.filename)), default=None)
    if last is None:
        return False
    return not any(_through_subject(f.filename) for f in frames[last + 1:])


def describe(exc: BaseException) -> str:
    """'TypeError: message' on one line, shortened."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}{'…' if len(text) > 200 else ''}"
