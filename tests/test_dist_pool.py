"""The worker pools: one per world size, each one process group for its whole life;
rank-ordered answers; a hang told apart from slow progress, named by collective and
call site; a raising rank named with whose exception it is; a dead rank reported; and
after any failure the next request runs on a fresh pool."""
import time

import pytest

from bn_invariants.invariants.distributed import pool as pool_module
from bn_invariants.invariants.distributed.pool import (RankError, WorkerCrash, WorkerHang,
                                                       WorkerPool, WorkerTimeout, shared_pool)
from bn_invariants.invariants.distributed.tasks import RankRequest, bias_descent
from bn_invariants.invariants.params import Params
from bn_invariants.strategies import Problem
from tests.fixtures import bad_dist_impls as tasks, dist_tasks

TIMEOUT_S = 4.0
HANG_LINE = 38  # tests/fixtures/bad_dist_impls.py: rank 0's lone all_reduce


@pytest.fixture(scope="module")
def pool():
    pool = WorkerPool(2, timeout_s=TIMEOUT_S)
    yield pool
    pool.stop()


def test_answers_come_in_rank_order(pool):
    assert pool.run(tasks.rank_sum, [1, 2]) == [3.0, 3.0]
    assert pool.run(tasks.rank_sum, [5, 6]) == [11.0, 11.0]
    with pytest.raises(ValueError, match="3 requests, but this pool has 2 ranks"):
        pool.run(tasks.rank_sum, [1, 2, 3])


def test_a_group_bound_once_stays_valid_across_world_sizes():
    # the harness once destroyed the group when W changed: a group bound at first use
    # (as a module-level dist.group.WORLD is) then failed or hung
    for world in (2, 3, 2, 4, 3, 2):
        assert shared_pool("gloo", world).run(dist_tasks.bound_group_sum, [1] * world) == \
            [float(world)] * world


def test_a_hang_is_named_by_its_collective_before_the_timeout(monkeypatch):
    monkeypatch.setattr(pool_module, "HANG_S", 1.0)
    pool = WorkerPool(2, timeout_s=60.0)
    try:
        start = time.monotonic()
        with pytest.raises(WorkerHang) as info:
            pool.run(tasks.hang_on_rank_zero, [0, 0])
        elapsed = str(info.value).partition("(idle in it for ")[2].partition(" s)")[0]
        assert time.monotonic() - start < 20, "the hang waited for the timeout"
        assert str(info.value) == (
            f"hang_on_rank_zero on 2 ranks: a collective not every rank reached (idle in it for "
            f"{elapsed} s): rank 0 waits "
            f"in all_reduce (called from tests/fixtures/bad_dist_impls.py:{HANG_LINE} in "
            f"hang_on_rank_zero); rank 1 had answered; the worker pool was stopped")
        assert not pool.running
        assert pool.run(tasks.rank_sum, [1, 1]) == [2.0, 2.0]  # a fresh pool
    finally:
        pool.stop()


def test_a_rank_computing_past_the_timeout_is_not_a_hang(pool):
    assert pool.run(dist_tasks.compute_for, [TIMEOUT_S + 2] * 2) == [1.0, 1.0]


def test_the_timeout_is_the_last_resort_for_a_rank_making_no_progress(pool):
    with pytest.raises(WorkerTimeout) as info:
        pool.run(dist_tasks.sleep_on_rank_zero, [TIMEOUT_S + 30] * 2)
    assert str(info.value).startswith(
        "sleep_on_rank_zero on 2 ranks: rank 0 made no progress (no answer, no computation) "
        "for 4 s: rank 0 is at tests/fixtures/dist_tasks.py:"), str(info.value)
    assert str(info.value).endswith("rank 1 had answered; the worker pool was stopped")
    assert pool.run(tasks.rank_sum, [1, 1]) == [2.0, 2.0]


def test_a_raising_rank_is_named_in_one_line_as_the_subjects(pool):
    with pytest.raises(RankError) as info:
        pool.run(tasks.raise_on_rank_one, [0, 0])
    assert str(info.value) == (
        "raise_on_rank_one on 2 ranks: rank 1 raised ValueError: slice refused; the subject's "
        "exception, at tests/fixtures/bad_dist_impls.py:45 in raise_on_rank_one")
    assert pool.run(tasks.rank_sum, [2, 2]) == [4.0, 4.0]


def test_an_exception_of_the_suite_is_named_the_suites(pool):
    request = RankRequest("bn_invariants.invariants.distributed.reference:AllReduceBatchNorm",
                          Problem(shape=(2, 2)), 0, 1, Params())  # bias_descent needs Steps
    with pytest.raises(RankError) as info:
        pool.run(bias_descent, [request, request])
    message = str(info.value)
    assert "rank 0 raised AttributeError" in message and "(rank 1 too)" in message, message
    assert "the suite's exception, at " in message and "tasks.py:" in message, message
    assert message.endswith("a bug in bn-invariants, please report it"), message


def test_a_dead_worker_is_reported(pool):
    with pytest.raises(WorkerCrash, match=r"the worker of rank 1 died \(exit code 3\)"):
        pool.run(tasks.exit_on_rank_one, [0, 0])
    assert pool.run(tasks.rank_sum, [3, 3]) == [6.0, 6.0]


def test_two_pools_rendezvous_apart():
    first, second = WorkerPool(2, timeout_s=30), WorkerPool(2, timeout_s=30)
    try:
        first.start()
        second.start()
        assert first.store_dir != second.store_dir
        assert first.run(tasks.rank_sum, [1, 2]) == [3.0, 3.0]
        assert second.run(tasks.rank_sum, [10, 20]) == [30.0, 30.0]
    finally:
        first.stop()
        second.stop()
