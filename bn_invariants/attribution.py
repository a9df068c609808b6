"""Name the likely cause of one failure, from evidence, using the zoo as a library of causes.

Given a violated invariant and its counterexample (a Case), in order:

1. a subject that does not normalise over the batch at all: ``not-a-batch-norm``;
2. the zoo's mutants replayed on the counterexample.  Each mutant's one training step and
   eval pass on the case's problem (output, gradients, running statistics) is compared
   with the correct control's and the subject's: a mutant whose bug shows there and which
   the subject behaves like is *matched*; one whose bug does not show there is *silent*.
   The first matched mutant (most alike first) that fails the same invariant on the same
   quantity names the cause.  A mutant whose bug shows and which the subject does not
   behave like is never named;
3. a forward pass that agrees with the correct control on the counterexample, gradients
   that do not, and a torch.autograd.Function of the subject's own in its graph:
   ``backward``;
4. a batch of at most one value per channel: ``degenerate-batch``;
   a half-precision counterexample whose violation is about a dtype: ``mixed-precision``;
   one that passes in float32: ``low-precision-statistics``;
5. the silent mutant that fails the counterexample on the same quantity most like the
   subject (the nearest reported value); else the most alike matched mutant, though it
   does not fail the case (the subject has its bug);
6. a counterexample at extreme magnitudes or eps that passes once tamed (severity 0,
   torch's default eps): ``extreme-range``;
7. a long reduction that passes at 64 values per channel: ``long-reduction``;
8. else ``unknown``, with the level the evidence gives (precision for a half-precision
   counterexample, semantic otherwise).
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
from torch.autograd.function import BackwardCFunction

from bn_invariants.defects import Finding
from bn_invariants.invariants.assertions import InvariantViolation
from bn_invariants.invariants.causes import CAUSES
from bn_invariants.invariants.catalogue.magnitudes import exponent_range
from bn_invariants.invariants.inheritance import quantity
from bn_invariants.invariants.params import Extreme
from bn_invariants.invariants.runner import check_case
from bn_invariants.invariants.step import build, record_step
from bn_invariants.invariants.subjects import REFERENCE_SUBJECT, Subject
from bn_invariants.replay import replay_line
from bn_invariants.strategies.dtypes import finfo
from bn_invariants.strategies.shapes import length_shape

HALF = ("float16", "bfloat16")
SHORT_LENGTH = 64
"""Values per channel a long counterexample is shortened to (rule 5)."""
CLOSE = 0.25
"""A subject does what a mutant does on a quantity when it is within this fraction of
the mutant's distance from the control there."""
NOTICEABLE = 32
"""A mutant's bug shows on a quantity when it moves it by more than this many unit
roundoffs of the case's dtype (relative to the quantity's size): rounding noise never does."""


@dataclass(frozen=True)
class Attribution:
    """The likely cause of one failure, its level, and the evidence in one sentence."""

    cause: str
    level: str
    evidence: str


def attribute(invariant, subject: Subject, case, message: str, *, diagnosis=None,
              reference: Subject = REFERENCE_SUBJECT) -> Attribution:
    """The Attribution of ``subject`` failing ``invariant`` on ``case`` with ``message``
    (see the module's docstring for the rules).  Never raises for the subject's sake."""
    if diagnosis is not None and not diagnosis.normalises and not diagnosis.frozen_like:
        return _named("not-a-batch-norm", diagnosis.detail)
    if case is None:
        return _unknown(None, "no counterexample to replay")
    with warnings.catch_warnings():  # the mutants' own warnings are not the user's
        warnings.simplefilter("ignore")
        return _attribute(invariant, subject, case, message, reference)


def _attribute(invariant, subject, case, message, reference) -> Attribution:
    problem, wanted = case.problem, quantity(message)
    zoo = _Zoo(invariant, subject, case, reference)
    for _, mutant, cause, shows in zoo.matched:
        if zoo.fails_alike(mutant)[0] == wanted:
            return _named(cause, f"behaves like the zoo's {_short(mutant)} on the "
                                 f"counterexample ({', '.join(shows)}), which fails it the same way")
    if zoo.backward_alone() and _custom_function(subject, problem):
        return _named("backward", "its forward pass agrees with a correct batch norm on the "
                                  "counterexample and its gradients do not, and they come from a "
                                  "hand-written torch.autograd.Function")
    if problem.reduction_length <= 1:
        return _named("degenerate-batch", f"fails on a batch of {problem.reduction_length} "
                                          f"value(s) per channel, where a batch norm must "
                                          f"raise a clear error or leave its state alone")
    if problem.dtype in HALF and "dtype" in wanted:
        return _named("mixed-precision", f"{wanted} is wrong for {problem.dtype} input")
    if problem.dtype in HALF and _passes(invariant, subject, case, dtype="float32"):
        return _named("low-precision-statistics", f"fails in {problem.dtype}, but the same "
                                                  f"case passes in float32")
    alike = zoo.silent_alike(wanted, _reported_value(message))
    if alike is not None:
        mutant, cause = alike
        return _named(cause, f"the zoo's {_short(mutant)} fails the same counterexample "
                             f"the same way ({wanted})")
    if zoo.matched:
        _, mutant, cause, shows = zoo.matched[0]
        return _named(cause, f"behaves like the zoo's {_short(mutant)} "
                             f"({', '.join(shows)}) on the counterexample")
    if _extreme(case) and _passes(invariant, subject, case, tame=True):
        return _named("extreme-range", f"fails at {_extremity(case)}, but the same case "
                                       f"passes at ordinary magnitudes and eps")
    if problem.reduction_length > SHORT_LENGTH * 8 and _passes(invariant, subject, case, short=True):
        return _named("long-reduction", f"fails at {problem.reduction_length} values per "
                                        f"channel, but passes at {SHORT_LENGTH}")
    return _unknown(problem, "no mutant of the zoo and no probe explains it")


def _named(cause: str, evidence: str) -> Attribution:
    return Attribution(cause, CAUSES[cause].level, evidence)


def _unknown(problem, evidence: str) -> Attribution:
    level = "precision" if problem is not None and problem.dtype in HALF else "semantic"
    return Attribution("unknown", level, evidence)


# ---- rule 2: the zoo ------------------------------------------------------------------

@lru_cache(maxsize=1)
def _library() -> tuple:
    """(control, ((mutant Subject, cause), ...)) from the zoo."""
    from bn_invariants.zoo import MUTANTS, ZooBatchNorm, spec
    control = Subject(spec(ZooBatchNorm), ZooBatchNorm)
    return control, tuple((Subject(spec(m), m), m.CAUSE) for m in MUTANTS)


class _Zoo:
    """The zoo's mutants on one counterexample: those whose bug shows there and which the
    subject behaves like (``matched``: (share, mutant, cause, quantities), most alike
    first), and those whose bug does not show there (``silent``)."""

    def __init__(self, invariant, subject, case, reference):
        self.invariant, self.case, self.reference = invariant, case, reference
        control, mutants = _library()
        problem = case.problem
        ctrl, mine = behaviour(control, problem), behaviour(subject, problem)
        self.ctrl, self.mine, self.dtype = ctrl, mine, problem.dtype
        self.matched, self.silent = [], []
        for mutant, cause in mutants:
            theirs = behaviour(mutant, problem)
            shows = _shows(theirs, ctrl, problem.dtype)
            if not shows:
                self.silent.append((mutant, cause))
                continue
            share = _share(mine, theirs, ctrl, shows)
            if share is not None:
                self.matched.append((share, mutant, cause, shows))
        self.matched.sort(key=lambda m: -m[0])

    def backward_alone(self) -> bool:
        """Whether the subject's output agrees with the control's and its input or
        weight gradient does not (beyond rounding noise)."""
        if self.mine is None or self.ctrl is None:
            return False
        unit = finfo(self.dtype).eps / 2

        def differs(name):
            a, b = self.mine.get(name), self.ctrl.get(name)
            return (a is not None and b is not None and a.shape == b.shape
                    and _gap(a, b) > NOTICEABLE * unit * (1 + _size(b)))
        return not differs("output") and (differs("input_grad") or differs("weight_grad"))

    def fails_alike(self, mutant) -> tuple:
        """(quantity, reported value or NaN) of the mutant's violation of the invariant on
        the case; (None, None) when it keeps it (or raises something else)."""
        try:
            check_case(self.invariant, mutant, self.case, self.reference)
        except InvariantViolation as exc:
            value = _reported_value(str(exc))
            return quantity(str(exc)), (math.nan if value is None else value)
        except Exception:  # noqa: BLE001  (a mutant that raises does not fail it alike)
            return None, None
        return None, None

    def silent_alike(self, wanted: str, got):
        """(mutant, cause) of the silent mutant that breaks the invariant on the same
        quantity with the value nearest the subject's; None when none does."""
        alike = []
        for mutant, cause in self.silent:
            what, value = self.fails_alike(mutant)
            if what == wanted:
                alike.append((_distance(value, got), mutant, cause))
        if not alike:
            return None
        _, mutant, cause = min(alike, key=lambda a: a[0])
        return mutant, cause


def _short(subject: Subject) -> str:
    return subject.name.rpartition(":")[2]


GROUPS = (("output", "input_grad", "weight_grad", "bias_grad"),
          ("running_mean", "running_var"),
          ("eval_output", "eval_running_mean", "eval_running_var"))
"""What a behaviour records: the training step, the running statistics after it, an eval
pass after that.  A bug shows first in one group (the others may follow from it)."""
QUANTITIES = tuple(name for group in GROUPS for name in group)


def behaviour(subject: Subject, problem) -> dict | None:
    """What one fresh module of ``subject`` does on ``problem``: a training step (output,
    dl/dx, dl/dγ, dl/dβ, running statistics), then an eval pass on the same input (its
    output and the running statistics after it), as float64 CPU tensors; None when the
    subject raises on it (a degenerate batch, say)."""
    try:
        module = build(subject, problem)
        step = record_step(module, subject, problem)
        found = {name: getattr(step, name) for name in QUANTITIES[:6]}
        with torch.no_grad():
            found["eval_output"] = module.eval()(problem.input()).detach().to("cpu", torch.float64)
        for name in ("running_mean", "running_var"):
            value = getattr(module, name, None)
            found[f"eval_{name}"] = (value.detach().to("cpu", torch.float64)
                                     if isinstance(value, torch.Tensor) else None)
        return found
    except Exception:  # noqa: BLE001  (the subject's refusal is evidence too: no behaviour)
        return None


def _shows(theirs, ctrl, dtype: str) -> tuple:
    """The quantities of the first group on which a mutant's bug shows (moves them beyond
    rounding noise): its primary symptom; () where it shows nowhere."""
    if theirs is None or ctrl is None:
        return ()
    unit = finfo(dtype).eps / 2
    for group in GROUPS:
        out = []
        for name in group:
            a, b = theirs.get(name), ctrl.get(name)
            if a is None or b is None or a.shape != b.shape:
                continue
            if _gap(a, b) > NOTICEABLE * unit * (1 + _size(b)):
                out.append(name)
        if out:
            return tuple(out)
    return ()


def _share(mine, theirs, ctrl, shows) -> float | None:
    """The fraction of the quantities where the mutant's bug first shows on which the
    subject does what the mutant does (within CLOSE of the mutant's distance from the
    control), when that includes the first of them and is at least half; else None: the
    subject does not have the mutant's bug."""
    if mine is None:
        return None
    close = []
    for name in shows:
        a = mine.get(name)
        ok = (a is not None and a.shape == theirs[name].shape
              and _gap(a, theirs[name]) <= CLOSE * _gap(theirs[name], ctrl[name]))
        close.append(ok)
    share = sum(close) / len(close)
    return share if close[0] and share >= 0.5 else None


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b|, with NaN and ±inf equal only to themselves."""
    same = (a == b) | (a.isnan() & b.isnan())
    diff = torch.where(same, torch.zeros_like(a), (a - b).abs().nan_to_num(math.inf))
    return float(diff.max()) if diff.numel() else 0.0


def _size(t: torch.Tensor) -> float:
    finite = t[torch.isfinite(t)]
    return float(finite.abs().max()) if finite.numel() else 0.0


_VALUE = re.compile(r"^[^=]*=\s*([-+0-9.eEinfa]+)")


def _reported_value(message: str) -> float | None:
    """The value a violation reports (``Q[i]=VALUE, but ...``), when it is a number."""
    found = _VALUE.match(message)
    try:
        return float(found.group(1)) if found else None
    except ValueError:
        return None


def _distance(value: float, got: float | None) -> float:
    if got is None or math.isnan(value) or math.isnan(got):
        return math.inf if not (got is not None and math.isnan(value) and math.isnan(got)) else 0.0
    if math.isinf(value) or math.isinf(got):
        return 0.0 if value == got else math.inf
    return abs(value - got)


# ---- rules 3 to 5: probes of the counterexample ---------------------------------------

EXTREME_EPS = (1e-12, 1.0)
"""An eps outside this range is extreme (torch's default is 1e-5)."""


def _extreme(case) -> bool:
    """Whether ``case`` reaches towards the dtype's limits: an extreme regime or eps, or
    the extreme-magnitudes invariant's own scaling above or below ordinary values."""
    problem = case.problem
    eps = problem.options.eps
    if isinstance(case.params, Extreme):
        return True
    return ((problem.regime in ("magnitude", "heavy_tails", "mixed_scales", "tiny_variance")
             and problem.severity > 0) or not EXTREME_EPS[0] <= eps <= EXTREME_EPS[1])


def _extremity(case) -> str:
    problem = case.problem
    if isinstance(case.params, Extreme):
        lo, hi = exponent_range(problem.dtype, problem.reduction_length)
        top = lo + round(case.params.position * (hi - lo))
        return f"|x| up to 2^{top}, eps={problem.options.eps:g}"
    values = problem.values
    finite = values[torch.isfinite(values)]
    largest = float(finite.abs().max()) if finite.numel() else 0.0
    return f"|x| up to {largest:.3g} ({problem.regime}), eps={problem.options.eps:g}"


def _tamed(case):
    """``case`` at ordinary magnitudes (severity 0, or the largest |x| near 1) and torch's
    default eps."""
    problem = case.problem
    problem = replace(problem, severity=0.0, options=replace(problem.options, eps=1e-5))
    params = case.params
    if isinstance(params, Extreme):
        lo, hi = exponent_range(problem.dtype, problem.reduction_length)
        params = replace(params, position=-lo / (hi - lo), spread=0)
    return replace(case, problem=problem, params=params)


def _custom_function(subject, problem) -> bool:
    """Whether the subject's training output is computed by a torch.autograd.Function of
    its own (a hand-written backward) somewhere in its graph."""
    try:
        module = build(subject, problem)
        y = module.train()(problem.input().requires_grad_(True))
    except Exception:  # noqa: BLE001
        return False
    seen, stack = set(), [getattr(y, "grad_fn", None)]
    while stack and len(seen) < 500:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, BackwardCFunction):
            return True
        stack.extend(fn for fn, _ in getattr(node, "next_functions", ()))
    return False


def _passes(invariant, subject, case, *, dtype=None, tame=False, short=False) -> bool:
    """Whether ``subject`` keeps ``invariant`` on ``case`` changed in one respect: its
    dtype, its magnitudes and eps tamed, or its reduction shortened."""
    if tame:
        case = _tamed(case)
    problem = case.problem
    if dtype is not None:
        problem = replace(problem, dtype=dtype)
    if short:
        problem = replace(problem, shape=length_shape(len(problem.shape), problem.num_features,
                                                      SHORT_LENGTH))
    try:
        check_case(invariant, subject, replace(case, problem=problem))
    except Exception:  # noqa: BLE001  (any failure: it does not pass)
        return False
    return True


def finding_of(target, violation, diagnosis, reference) -> Finding:
    """``violation`` of ``target`` (invariant, subject, space) as a Finding, with its
    likely cause and the line that replays it."""
    case = getattr(violation, "reproduction", None)
    found = attribute(target.invariant, target.subject, case, str(violation),
                      diagnosis=diagnosis, reference=reference)
    problem = getattr(case, "problem", None)
    size = math.prod(problem.shape) if problem is not None else 0
    return Finding(target.invariant.id, target.space.device, getattr(problem, "dtype", None),
                   found.cause, found.level, found.evidence, str(violation).splitlines()[0],
                   size, replay_line(target, case))
