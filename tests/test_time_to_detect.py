"""The time-to-detect table (docs/time-to-detect.md, written by ``python3 -m
tools.time_to_detect``) is complete, fresh and honest: every zoo mutant has a catcher,
every catcher is registered, the rows are the kill matrix's catches (and each
mutant's CAUGHT_BY), each shrunk counterexample is small, and the markdown is what
the tool renders from its JSON.

Fast checks only: nothing here searches a mutant (the tool does that).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
from hypothesis import note
from hypothesis import strategies as st

from bn_invariants.invariants import REGISTRY, InvariantViolation
from bn_invariants.invariants.cases import Case
from bn_invariants.invariants.runner import check_case, find_violation
from bn_invariants.strategies.options import BNOptions
from bn_invariants.strategies.problems import Problem
from bn_invariants.strategies.shapes import LONG_REDUCTION, reduction_length
from tools import time_to_detect as ttd
from tools.kill_matrix import JSON_PATH as KILL_MATRIX_PATH
from tools.kill_matrix import subjects

RERUN = "rerun `python3 -m tools.time_to_detect --jobs 2` and commit its two outputs"

MAX_VALUES_PER_CHANNEL = 4
"""Each mutant's quickest catcher shrinks, outside the long-reduction draw, to at most 4
values per channel (N times the spatial sizes): the shrinker takes N and every
spatial side to their floor, which is 2 values for a training batch, 3 where a bug
needs two summation orders to differ (NondeterministicBatchNorm) and 0 or 1 for the
degenerate batches; measured maximum 3.  A later catcher that finds the bug only
late in the search may stop above it (measured: (5, 3) float16 heavy tails,
EvalUpdatesRunningStats x eval-matches-train-with-batch-stats, found at example 29:
fewer values redraw the outliers that exposed it); MAX_ELEMENTS bounds those."""

MAX_ELEMENTS = 128
"""... and at most 128 elements (2 values x 64 channels).  The channel count is the
one axis where shrinking can stall: a Problem's values are drawn for the whole
tensor from one seed, so with the seed fixed, dropping a channel redraws the values
of the channel that failed, and the shrinker cannot change both at once.  Measured
maximum 68, (2, 34), NaiveVarianceBatchNorm x constant-channel-finite, whose bug
also shows at (2, 2) with seed 12 (checked by hand), a neighbour the shrinker
cannot reach."""


@pytest.fixture(scope="module")
def doc():
    assert ttd.JSON_PATH.exists(), f"{ttd.JSON_PATH} is missing: {RERUN}"
    return json.loads(ttd.JSON_PATH.read_text())


def caught_rows(doc):
    return [r for r in doc["rows"] if r["caught"]]


def case_of(row) -> Case:
    """The shrunk counterexample of ``row`` rebuilt from its JSON fields."""
    ce = row["counterexample"]
    problem = Problem(shape=tuple(ce["shape"]), dtype=ce["dtype"], layout=ce["layout"],
                      regime=ce["regime"], severity=ce["severity"], seed=ce["seed"],
                      options=BNOptions(**ce["options"]))
    return Case(problem, REGISTRY[row["invariant"]].params.kind(**ce["params"]))


def test_every_mutant_has_a_catcher(doc):
    for mutant in ttd.all_mutants():
        catchers = [r["invariant"] for r in caught_rows(doc) if r["mutant"] == mutant.__name__]
        assert catchers, (f"catchers of {mutant.__name__} in the time-to-detect table=[], but "
                          f"should be at least one [{RERUN}]")
    unknown = sorted({r["mutant"] for r in doc["rows"]} - {m.__name__ for m in ttd.all_mutants()})
    assert not unknown, f"mutants not in the zoo={unknown}, but should be [] [{RERUN}]"


def test_every_catcher_is_registered(doc):
    gone = sorted({r["invariant"] for r in doc["rows"]} - set(REGISTRY))
    assert not gone, f"unregistered invariants in the table={gone}, but should be [] [{RERUN}]"


def test_rows_are_the_kill_matrix_catches(doc):
    kill_matrix = json.loads(KILL_MATRIX_PATH.read_text())
    unknown = [m.__name__ for m in ttd.all_mutants() if m.__name__ not in kill_matrix["matrix"]]
    assert not unknown, (f"mutants the kill matrix lacks={unknown}, but should be [] [rerun "
                         f"`python3 -m tools.kill_matrix`, then {RERUN}]")
    expected = sorted(ttd.catchers(kill_matrix, ttd.all_mutants()))
    got = sorted((r["mutant"], r["invariant"]) for r in doc["rows"])
    assert got == expected, (f"(mutant, invariant) rows={sorted(set(got) ^ set(expected))} "
                             f"differ from the kill matrix's catches, but should not [{RERUN}]")


def test_recorded_case_is_the_reported_one(doc):
    for r in caught_rows(doc):
        assert r["reported"], (f"{r['mutant']} x {r['invariant']}: last failing case="
                               f"{r['counterexample']['repr']}, but should be the one Hypothesis "
                               f"replayed last and reported")
        assert r["repeatable"], (f"{r['mutant']} x {r['invariant']}: two identical searches "
                                 f"disagreed, but the search should be deterministic")


def test_shrunk_counterexamples_are_small(doc):
    quickest = {}
    for r in caught_rows(doc):
        quickest.setdefault(r["mutant"], r)  # rows are ordered quickest first
    for r in caught_rows(doc):
        ce = r["counterexample"]
        where = f"{r['mutant']} x {r['invariant']}, shape {ce['shape']}"
        assert ce["numel"] == math.prod(ce["shape"]), \
            f"{where}: elements={ce['numel']}, but should be the shape's product"
        if ttd.is_long(ce):
            assert ce["shape"][1] == 1, (f"{where}: channels={ce['shape'][1]}, but a long "
                                         f"reduction should shrink to one channel")
            continue
        n = reduction_length(ce["shape"])
        assert quickest[r["mutant"]] is not r or n <= MAX_VALUES_PER_CHANNEL, (
            f"{where}: values per channel={n}, but should be <= {MAX_VALUES_PER_CHANNEL} "
            f"once shrunk by the mutant's quickest catcher")
        assert ce["numel"] <= MAX_ELEMENTS, (f"{where}: elements={ce['numel']}, but should be "
                                             f"<= {MAX_ELEMENTS} once shrunk")


def test_long_counterexamples_need_a_long_reduction(doc):
    """A counterexample left at the long-reduction length (1e5 values per channel) is
    minimal only if the bug needs it: it must fail there and pass at half that length,
    which is still 50 times the short draws' longest (8 x 5**3 = 1000 values)."""
    table = subjects()
    for r in (r for r in caught_rows(doc) if ttd.is_long(r["counterexample"])):
        case = case_of(r)
        subject, invariant = table[r["mutant"]][0], REGISTRY[r["invariant"]]
        with pytest.raises(InvariantViolation):
            check_case(invariant, subject, case)
        shape = case.problem.shape
        assert len(shape) == 2, f"long counterexample of rank {len(shape)}: extend this test"
        half = Case(dataclasses.replace(case.problem, shape=(LONG_REDUCTION // 2, shape[1])),
                    case.params)
        check_case(invariant, subject, half)


@pytest.mark.parametrize("bound", [3, 10])
def test_recording_keeps_the_shrunk_case(bound):
    """On a toy target that fails for every x >= bound, the case Recording keeps is the
    shrunk one, bound, and it is the case Hypothesis reports."""

    class Toy:
        def cases(self):
            return st.integers(0, 1000)

        def check(self, x):
            note(f"reproduce: {x!r}")
            assert x < bound

    recording = ttd.Recording(Toy())
    error = find_violation(recording, ttd.shrink_settings())
    assert isinstance(error, AssertionError), f"toy search found {error!r}, but should fail"
    assert recording.last_failing == bound, (f"recorded case={recording.last_failing}, but "
                                             f"should be the shrunk {bound}")
    assert ttd.replayed_last(error, recording.last_failing)
    assert not ttd.replayed_last(error, bound + 1)


def test_order_does_not_depend_on_timings(doc):
    shuffled = copy.deepcopy(doc["rows"])[::-1]
    for k, r in enumerate(shuffled):
        if r["seconds_to_first_failure"] is not None:
            r["seconds_to_first_failure"] = 1.0 / (k + 1)
        r["seconds_with_shrinking"] = float(k)

    def pairs(rows):
        return [(r["mutant"], r["invariant"]) for r in rows]
    assert pairs(ttd.order(shuffled)) == pairs(doc["rows"]), \
        "row order changed with the timings, but should depend on deterministic fields only"


def test_markdown_is_fresh(doc):
    assert ttd.MD_PATH.exists(), f"{ttd.MD_PATH} is missing: {RERUN}"
    assert ttd.MD_PATH.read_text() == ttd.markdown(doc), \
        f"docs/time-to-detect.md differs from the render of its JSON, but should not [{RERUN}]"
