"""Run one invariant against one subject on one device, outside pytest too."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import torch
from hypothesis import (HealthCheck, Phase, currently_in_test_context, find, given, note,
                        seed as hseed, settings as hsettings, target)
from hypothesis.errors import NoSuchExample, UnsatisfiedAssumption

from bn_invariants.invariants.known_deviations import excluding_deviations, regional_deviations
from bn_invariants.invariants.assertions import Unsupported, is_device_fault, recording_ratios
from bn_invariants.invariants.cases import Space
from bn_invariants.invariants.registry import Invariant
from bn_invariants.invariants.subjects import REFERENCE_SUBJECT, Subject
from bn_invariants.strategies.profiles import profile
from bn_invariants.strategies.shapes import length_shape, rows_shape


LONG_LENGTH = 4096
"""Values per channel of the long case every run checks (kernels switch to split or chunked
reductions around here)."""

LONG_PATH_LENGTH = 2**17 + 1
"""Values per channel of the long-path cases: past 2**16 (where a 16-bit count or index
wraps, and where kernels switch algorithms), and one value past 2**17, so a reduction cut
into chunks of any power of two ends in a chunk of one value."""

LONG_PATH_DTYPES = ("float64", "float32")
"""The dtypes of the long-path cases: float64, whose output tolerance at 2**17 values is
about 3e-13 (1 + |mu|/s + |x̂|) (random rounding, k(n) = 2 sqrt(n)), and float32, where it
is about 0.03 (1 + |mu|/s + |x̂|) (k(n) = n)."""

LONG_PATH_INVARIANTS = ("agrees-with-reference", "output-moments", "input-gradient-closed-form")
"""The invariants checked on the long-path cases, not all of them: a case is 2**17 + 1
values per channel (32 times the 4096 of the other long cases) in two dtypes.

A kernel that drops, truncates or mis-merges part of a long reduction gets its batch
statistics wrong, and every output then moves by a fraction of sigma in the positional
regime: ``agrees-with-reference`` compares each output with the float64 oracle's, and
``output-moments`` checks its mean and variance per channel, reading the output alone (so
a wrong statistic cannot hide in a reference computed the same wrong way).  The backward
has reductions of its own (the sums of g and of g x̂ per channel), which a kernel may
split or index the same way: ``input-gradient-closed-form`` checks dl/dx against the exact
gradient.  The others reach these statistics through the same forward (running
statistics, eval mode, the metamorphic relations compare two passes that would share the
bug): each target's pair costs about 0.15 s on one core (a search for its simplest
float64 case, two checks of 131,073 values), some 25 s more for every default run (five
subjects) were all 35 invariants with long cases given them, for no bug these three miss.  Each case has the fewest
channels the invariant's simplest case has (one, mostly)."""


@dataclass(frozen=True)
class Target:
    """An invariant, a subject and the part of its space the invariant applies to."""

    invariant: Invariant
    subject: Subject
    space: Space
    reference: Subject = REFERENCE_SUBJECT
    replicas: int = 1
    """Problems checked per drawn case: the case, then copies with derived seeds."""
    excluded: tuple = ()
    """Known deviations with a region: cases inside one are not drawn (their
    counterexamples are replayed as strict xfails instead)."""

    @property
    def id(self) -> str:
        return f"{self.invariant.id}-{self.subject.name}-{self.space.device}"

    def cases(self):
        """The strategy of Cases this target draws (built once, then reused)."""
        return self._cases

    @cached_property
    def _cases(self):
        cases = self.invariant.draw(self.space)
        if not self.excluded:
            return cases
        return cases.filter(lambda case: not any(d.contains(case.problem) for d in self.excluded))

    def long_cases(self, n: int = LONG_LENGTH) -> tuple:
        """The simplest case this target draws in bfloat16 and in float32 (where it takes
        them; else its first dtype), each stretched to ``n`` values per channel; empty where
        its cases are never long (single values, empty batches, finite differences).
        Every run checks them, so a kernel's long-reduction path is reached every time, in
        bfloat16 and where a subtler bug shows, in float32; and once more in float32 in the
        offset regime at full severity (|mu|/sigma up to 8/sqrt(u)), where E[x^2] - E[x]^2
        comes out zero or negative.  For the LONG_PATH_INVARIANTS, then the long-path
        cases: LONG_PATH_LENGTH values per channel in float64 and float32, in the
        positional regime, whose statistics depend on position, so that a kernel that
        sees part of a channel (the first 2**16 values, all but the last chunk) moves the
        output far outside the tolerance.  Empty for a distributed invariant too: its
        cases carry per-rank slices drawn for their batch (distributed/split.py draws no
        long reductions), which a stretched shape would not match."""
        distributed = self.invariant.kind != "single"
        if not self.space or not self.invariant.long_reductions or distributed:
            return ()
        ranks = self.space.dtype_ranks
        plain = [d for d in LONG_DTYPES if d in ranks] or list(ranks)[:1]
        path = ([d for d in LONG_PATH_DTYPES if d in ranks]
                if self.invariant.id in LONG_PATH_INVARIANTS else [])
        simplest = {d: _simplest(self, d) for d in dict.fromkeys(plain + path)}  # one search each
        found = [_long_case(simplest[d], n) for d in plain]
        if "float32" in ranks:
            found.append(_long_case(_simplest(self, "float32", "offset"), n, severity=1.0))
        found += [_long_path_case(self, simplest[d]) for d in path]
        return tuple(case for case in found if case is not None)

    def check(self, case) -> None:
        """Raise InvariantViolation when the subject breaks the invariant on ``case``
        (or on one of its replicas).  The failing case is noted for Hypothesis's report
        and kept on the exception as ``reproduction``.  Inside a search, the worst
        error-to-bound ratio of a passing case is Hypothesis's ``target()``, so the search
        climbs towards the boundary: a false alarm for a correct subject, the violation
        for a broken one."""
        searching = currently_in_test_context()
        with recording_ratios() as worst:
            for variant in replicas_of(case, self.replicas):
                device = variant.problem.device
                try:
                    refuse_poisoned_device(device)
                    check_case(self.invariant, self.subject, variant, self.reference)
                    if device == "cuda":
                        torch.cuda.synchronize()  # a kernel's fault surfaces in its own case
                except Exception as exc:
                    if searching:
                        note(f"reproduce: {variant!r}")
                    exc.reproduction = variant
                    if is_device_fault(exc) and not FIRST_DEVICE_FAULT:
                        FIRST_DEVICE_FAULT.append(f"{self.id} on {variant!r}: "
                                                  f"{str(exc).splitlines()[0]}")
                    raise
        if searching and math.isfinite(worst[0]):
            target(worst[0], label="error / bound")


LONG_DTYPES = ("bfloat16", "float32")
"""The dtypes of the long cases every run checks."""


def _simplest(target: Target, dtype: str, regime: str | None = None):
    """The simplest case of ``target`` in ``dtype`` (and ``regime``, if given): a cheap
    search, small shapes shrink fast; None where it draws none."""
    search = profile("ci", max_examples=500, phases=[Phase.generate, Phase.shrink],
                     suppress_health_check=list(HealthCheck), print_blob=False)
    try:
        return find(target.cases(), lambda c: c.problem.dtype == dtype and (
            regime is None or c.problem.regime == regime), settings=search)
    except NoSuchExample:
        return None


def _long_case(found, n: int, severity: float | None = None):
    """``found`` (a simplest case, or None) with its shape stretched to ``n`` values per
    channel, rank and channels kept; at ``severity`` if given (its own otherwise)."""
    if found is None:
        return None
    problem = found.problem
    shape = length_shape(len(problem.shape), problem.num_features, n)
    severity = problem.severity if severity is None else severity
    return replace(found, problem=replace(problem, shape=shape, severity=severity))


def _long_path_case(target: Target, found):
    """``found``, a simplest case of ``target`` (or None), stretched to LONG_PATH_LENGTH
    values per channel (``rows_shape``: rank, channels, layout and options kept) and
    refilled in the positional regime at severity 1, a regime the search never draws;
    None where ``found`` is, or where the refilled case breaks one of the invariant's
    preconditions or lies in a known deviation's region."""
    if found is None:
        return None
    problem = found.problem
    shape = rows_shape(len(problem.shape), problem.num_features, LONG_PATH_LENGTH)
    case = replace(found, problem=replace(problem, shape=shape, regime="positional", severity=1.0))
    if not all(p.holds(case) for p in target.invariant.preconditions):
        return None
    if any(d.contains(case.problem) for d in target.excluded):
        return None
    return case


class DevicePoisoned(Exception):
    """A case not checked: an earlier device fault left this process's device unusable."""


FIRST_DEVICE_FAULT: list = []
"""Where this process met its first device fault (a CUDA error is sticky: after one,
every CUDA call in the process fails), as one line; empty until then."""


def refuse_poisoned_device(device: str) -> None:
    """Raise DevicePoisoned, naming the first fault, for a case on an accelerator after a
    device fault in this process: its every call would fail with that fault again, which
    would be reported as the case's own failure (or worse, taken for a refusal)."""
    if device != "cpu" and FIRST_DEVICE_FAULT:
        raise DevicePoisoned(f"not checked on {device}: this process's {device} context "
                             f"is unusable since a device fault in {FIRST_DEVICE_FAULT[0]}")


REPLICA_BUDGET = 4096
"""Elements per case beyond which a case is not replicated: replicas amortise the
fixed cost of drawing a case, which a large problem does not need."""


def replica_count(case, replicas: int) -> int:
    """How many problems ``replicas_of(case, replicas)`` yields: 1 for a large case."""
    problem = case.problem
    return 1 if problem.reduction_length * problem.num_features > REPLICA_BUDGET else replicas


def replicas_of(case, replicas: int):
    """``case``, then up to ``replicas - 1`` copies whose problem has a derived seed
    (new values, affine parameters and cotangent; same shape, dtype and options)."""
    yield case
    problem = case.problem
    for j in range(1, replica_count(case, replicas)):
        seed = (problem.seed + j * 0x9E3779B9) % 2**32
        yield replace(case, problem=replace(problem, seed=seed))


def check_case(invariant: Invariant, subject: Subject, case,
               reference: Subject = REFERENCE_SUBJECT) -> None:
    """Check one case outside Hypothesis (a replayed counterexample, say)."""
    invariant.check(subject, case, reference)


def target_for(invariant: Invariant, subject: Subject, space: Space,
               reference: Subject = REFERENCE_SUBJECT, replicas: int = 1) -> Target:
    """The Target of ``invariant`` on the part of ``space`` it applies to, less the
    dtypes a known deviation of this subject covers (replayed as strict xfails)."""
    applicable = excluding_deviations(invariant.id, subject, invariant.space_for(space))
    regional = regional_deviations(invariant.id, subject, space.device)
    return Target(invariant, subject, applicable, reference, replicas, regional)


def find_violation(target: Target, settings: hsettings | None = None, seed: int | None = None):
    """Search for a counterexample; return the (shrunk) exception, or None.  Where the
    search finds none, the target's long cases (``Target.long_cases``, which every pytest
    run checks too) are checked, so a bug that lives only on a long-reduction path counts.
    ``seed`` draws with that seed (``hypothesis.seed``), derandomized or not: one seeded run."""
    @given(case=target.cases())
    def search(case):
        target.check(case)

    if settings is not None:
        search = settings(search)
    if seed is not None:
        search = hseed(seed)(search)
    try:
        search()
    except Exception as exc:  # the shrunk failure, re-raised by Hypothesis
        return exc
    return check_long_cases(target)


def check_long_cases(target: Target):
    """The first exception a long case of ``target`` raises (``Target.long_cases``; one
    the subject declines, or the invariant rejects as a search would, is skipped), or
    None: the same in every run, whatever the seed."""
    for case in target.long_cases():
        try:
            target.check(case)
        except (Unsupported, UnsatisfiedAssumption):
            continue
        except Exception as exc:  # InvariantViolation, or an error a search would report too
            return exc
    return None
