"""The time-to-detect table (docs/time-to-detect.md, written by ``python3 -m
tools.time_to_detect``) is complete, fresh and honest: every zoo mutant has a catcher,
every catcher is registered, the rows are the kill matrix's catches (and each
mutant's CAUGHT_BY), each shrunk counterexample is small, and the markdown is what
the tool renders from its JSON.

Fast checks only: nothing here searches a mutant (the tool does that).
"""
from __future__ import annotations

import copy
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
from bn_invariants.strategies.shapes import reduction_length
from bn_invariants.zoo import ChunkedVarianceMergeBatchNorm
from tools import catch_rate
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


NEEDS_VALUES = {"ChunkedVarianceMergeBatchNorm": ChunkedVarianceMergeBatchNorm.CHUNK + 1}
"""Mutants whose bug needs more than MAX_VALUES_PER_CHANNEL values per channel, and how
many: ChunkedVarianceMerge is exact up to one chunk (64 values).  Its quickest catcher
shrinks to at least that many and at most twice as many (the length is N times the
spatial sides, so the shrinker stops on a product above the least; measured
(7, 1, 1, 2, 5), 70 values)."""


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
                      cotangent_regime=ce["cotangent_regime"], options=BNOptions(**ce["options"]))
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
    for r in (r for r in caught_rows(doc) if r["found_by"] == "search"):
        ce = r["counterexample"]
        where = f"{r['mutant']} x {r['invariant']}, shape {ce['shape']}"
        assert ce["numel"] == math.prod(ce["shape"]), \
            f"{where}: elements={ce['numel']}, but should be the shape's product"
        if ttd.is_long(ce):
            continue  # test_long_counterexamples_need_a_long_reduction replays it
        n = reduction_length(ce["shape"])
        least = NEEDS_VALUES.get(r["mutant"], 0)
        most = 2 * least if least else MAX_VALUES_PER_CHANNEL
        assert quickest[r["mutant"]] is not r or least <= n <= most, (
            f"{where}: values per channel={n}, but should be in [{least}, {most}] once shrunk "
            f"by the mutant's quickest catcher")
        assert ce["numel"] <= MAX_ELEMENTS, (f"{where}: elements={ce['numel']}, but should be "
                                             f"<= {MAX_ELEMENTS} once shrunk")


def test_long_counterexamples_need_a_long_reduction(doc):
    """A shrunk counterexample left at the long-reduction length (1e5 values per channel)
    fails when replayed from its recorded fields.  It is not minimal: the shrinker does
    not leave the strategy's long draw, so the long length stays even where the bug shows
    in a short draw (measured: ChannelsLastAsNCHW x half-precision-ulp at (2, 2, 50000)
    fails at (8, 2, 5) too; ChunkedVarianceMerge x input-gradient-closed-form at
    (100000, 1) needs only 65 values).  Each mutant's quickest catcher is short
    (test_shrunk_counterexamples_are_small)."""
    table = subjects()
    for r in (r for r in caught_rows(doc)
              if r["found_by"] == "search" and ttd.is_long(r["counterexample"])):
        case = case_of(r)
        subject, invariant = table[r["mutant"]][0], REGISTRY[r["invariant"]]
        with pytest.raises(InvariantViolation):
            check_case(invariant, subject, case)


def test_long_case_rows_are_the_long_cases(doc):
    """A row found by a long case (the search found nothing) records one of the long cases
    every run checks, not shrunk, and it fails when replayed; the catch rate agrees."""
    from bn_invariants.invariants.runner import target_for
    from tools.kill_matrix import space_of
    table = subjects()
    for r in (r for r in caught_rows(doc) if r["found_by"] == "long case"):
        subject, invariant = table[r["mutant"]][0], REGISTRY[r["invariant"]]
        target = target_for(invariant, subject, space_of(subject, invariant))
        long_cases = {repr(c): c for c in target.long_cases()}
        where = f"{r['mutant']} x {r['invariant']}"
        assert r["counterexample"]["repr"] in long_cases, (
            f"{where}: case={r['counterexample']['repr']}, but should be one of the long "
            f"cases {list(long_cases)}")
        assert case_of(r) == long_cases[r["counterexample"]["repr"]], \
            f"{where}: the recorded fields rebuild another case than {r['counterexample']['repr']}"
        with pytest.raises(InvariantViolation):
            check_case(invariant, subject, case_of(r))
        assert r["seeded"]["long_case"] is True, (
            f"{where}: seeded long_case={r['seeded']['long_case']}, but the long case caught "
            f"it [{RERUN}]")


def test_catch_rates_are_recorded(doc):
    runs = doc["seeded_runs"]
    assert runs >= 1, f"seeded runs={runs}, but should be at least 1 [{RERUN}]"
    for r in doc["rows"]:
        seeded, where = r["seeded"], f"{r['mutant']} x {r['invariant']}"
        assert set(seeded["search"]) <= set(range(runs)), \
            f"{where}: caught seeds={seeded['search']}, but should be within 0..{runs - 1}"
        assert seeded["long_case"] in (True, False, None), \
            f"{where}: long_case={seeded['long_case']}, but should be true, false or null"


def test_every_mutant_is_caught_in_every_seeded_run(doc):
    """The suite must catch every mutant, whatever the seed: in each seeded run, one of its
    catchers' searches or long cases fails."""
    runs = doc["seeded_runs"]
    for mutant in ttd.all_mutants():
        rows = [r for r in doc["rows"] if r["mutant"] == mutant.__name__]
        got = catch_rate.runs_caught(rows, runs)
        assert got == runs, (f"seeded runs that catch {mutant.__name__}={got}, but should be "
                             f"{runs} of {runs}")


def test_a_seed_fixes_the_draws():
    """find_violation(seed=s) draws the same cases for the same s, other cases for
    another: a seeded run is reproducible and the runs differ."""
    from hypothesis import strategies as st

    class Toy:
        def __init__(self):
            self.drawn = []

        def cases(self):
            return st.integers(0, 10**9)

        def long_cases(self):
            return ()

        def check(self, x):
            self.drawn.append(x)

    def draws(seed):
        toy = Toy()
        assert find_violation(toy, catch_rate.seeded_settings(10), seed=seed) is None
        return toy.drawn
    assert draws(1) == draws(1), "the same seed drew different cases, but should not"
    assert draws(1) != draws(2), "two seeds drew the same cases, but should not"


def test_runs_caught_counts_seeds_and_long_cases():
    rows = [{"seeded": {"search": [0, 2], "long_case": False}},
            {"seeded": {"search": [2, 3], "long_case": None}}]
    assert catch_rate.runs_caught(rows, 5) == 3
    rows.append({"seeded": {"search": [], "long_case": True}})
    assert catch_rate.runs_caught(rows, 5) == 5
    assert catch_rate.runs_caught(rows, 5, long_cases=False) == 3


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
