"""A counterexample in one line: ``bn-invariants replay INVARIANT IMPL "Case(...)"``
checks that case of that invariant on that batch norm again, outside pytest and
Hypothesis, and prints the violation (exit 1) or that it holds (exit 0)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping


def compact(value) -> str:
    """``repr`` of a dataclass with only the fields that differ from their defaults
    (recursively), so a Case reads Case(problem=Problem(shape=(2, 1)), params=Steps(steps=2,
    lr=1.0))."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return repr(dict(value)) if isinstance(value, Mapping) else repr(value)
    parts = []
    for f in dataclasses.fields(value):
        got = getattr(value, f.name)
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else dataclasses.MISSING)
        if default is dataclasses.MISSING or got != default:
            parts.append(f"{f.name}={compact(got)}")
    return f"{type(value).__name__}({', '.join(parts)})"



def replay_line(target, case) -> str:
    """One shell line that replays ``case`` of ``target``'s invariant on its subject
    ('' without a case)."""
    if case is None:
        return ""
    return (f"bn-invariants replay {target.invariant.id} {target.subject.spec} "
            f"\"{compact(case)}\"")


def parse_case(text: str):
    """The Case a replay line spells (``compact``'s output, or any ``repr`` of a Case)."""
    import bn_invariants.invariants as invariants
    import bn_invariants.invariants.params as params
    import bn_invariants.strategies as strategies
    names = {**vars(strategies), **vars(params), **vars(invariants)}
    try:
        case = eval(text, {"__builtins__": {}}, names)  # noqa: S307  (the user's own line)
    except Exception as exc:
        raise ValueError(f"{text!r} is not a Case(...) as a report prints it "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(case, invariants.Case):
        raise ValueError(f"{text!r} is a {type(case).__name__}, but should be a Case(...)")
    return case


def replay(invariant_id: str, spec: str, case_text: str, reference=None) -> str:
    """'' when ``spec`` keeps ``invariant_id`` on the case, else the violation; raises
    ValueError for an unknown invariant or a malformed case, SubjectError for a spec that
    does not load."""
    from bn_invariants.invariants import REGISTRY, InvariantViolation, load_subject
    from bn_invariants.invariants.runner import check_case
    from bn_invariants.invariants.subjects import REFERENCE_SUBJECT
    if invariant_id not in REGISTRY:
        raise ValueError(f"unknown invariant {invariant_id!r}: `bn-invariants list` shows the ids")
    case = parse_case(case_text)
    subject = load_subject(spec, "IMPL")
    try:
        check_case(REGISTRY[invariant_id], subject, case, reference or REFERENCE_SUBJECT)
    except InvariantViolation as exc:
        return str(exc)
    return ""
