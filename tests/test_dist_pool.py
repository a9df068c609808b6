"""The worker pool: rank-ordered answers, regrouping, and no hang on a hung, raising or
dead rank (a one-line error, the pool stopped, the next request on a fresh pool)."""
import time

import pytest

from bn_invariants.invariants.distributed.pool import (RankError, WorkerCrash, WorkerPool,
                                                       WorkerTimeout)
from tests.fixtures import bad_dist_impls as tasks

TIMEOUT_S = 4.0


@pytest.fixture(scope="module")
def pool():
    pool = WorkerPool(size=2, timeout_s=TIMEOUT_S)
    yield pool
    pool.stop()


def test_answers_come_in_rank_order_and_groups_change_size(pool):
    assert pool.run(tasks.rank_sum, [1, 2]) == [3.0, 3.0]
    assert pool.run(tasks.rank_sum, [7]) == [7.0]
    assert pool.run(tasks.rank_sum, [5, 6]) == [11.0, 11.0]


def test_a_hung_rank_ends_in_a_timeout_not_a_hang(pool):
    start = time.monotonic()
    with pytest.raises(WorkerTimeout, match=r"rank 0 did not answer within 4 s"):
        pool.run(tasks.hang_on_rank_zero, [0, 0])
    assert time.monotonic() - start < TIMEOUT_S + 10
    assert not pool.running
    assert pool.run(tasks.rank_sum, [1, 1]) == [2.0, 2.0]  # a fresh pool


def test_a_raising_rank_is_named_in_one_line(pool):
    with pytest.raises(RankError) as info:
        pool.run(tasks.raise_on_rank_one, [0, 0])
    assert str(info.value) == ("raise_on_rank_one on 2 ranks: rank 1 raised ValueError: slice "
                               "refused")
    assert pool.run(tasks.rank_sum, [2, 2]) == [4.0, 4.0]


def test_a_dead_worker_is_reported(pool):
    with pytest.raises(WorkerCrash, match=r"the worker of rank 1 died \(exit code 3\)"):
        pool.run(tasks.exit_on_rank_one, [0, 0])
    assert pool.run(tasks.rank_sum, [3, 3]) == [6.0, 6.0]


def test_two_pools_rendezvous_apart():
    first, second = WorkerPool(size=2, timeout_s=30), WorkerPool(size=2, timeout_s=30)
    try:
        first.start()
        second.start()
        assert first.store_dir != second.store_dir
        assert first.run(tasks.rank_sum, [1, 2]) == [3.0, 3.0]
        assert second.run(tasks.rank_sum, [10, 20]) == [30.0, 30.0]
    finally:
        first.stop()
        second.stop()
