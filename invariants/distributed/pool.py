"""A persistent pool of worker processes joined in a torch.distributed process group.

One pool serves a whole pytest run (one per xdist worker): its processes are
started once and fed requests through pipes.  Each request runs on ranks
0..W-1; when W changes, those ranks leave their group and join a new one of W
ranks.  Rendezvous goes through a file store in the pool's own temporary
directory, so parallel pools never share a port or a file.

Nothing hangs: every answer is awaited with a timeout.  A rank that raises, a
worker that dies and a rank that does not answer in time all end the request
with a one-line PoolError, and the pool is stopped (the next request starts a
fresh one).
"""
from __future__ import annotations

import atexit
import multiprocessing.connection
import shutil
import tempfile
import time

DEFAULT_TIMEOUT_S = 60.0
"""Seconds a request may take on every rank before the pool gives up on it."""
START_TIMEOUT_S = 180.0
"""Seconds the workers may take to start (importing torch on a busy machine)."""
MAX_WORLD = 4


class PoolError(Exception):
    """A distributed request failed: a rank raised, died or did not answer in time."""


class RankError(PoolError):
    """A rank raised while running a request; the message names it."""


class WorkerTimeout(PoolError):
    """Some ranks did not answer within the timeout: a deadlock, most often."""


class WorkerCrash(PoolError):
    """A worker process died while the pool was waiting for it."""


class WorkerPool:
    """``size`` worker processes using ``backend`` ("gloo" on the CPU, "nccl" on CUDA).

    ``run(function, requests)`` runs ``function(requests[r])`` on rank r of a
    process group of ``len(requests)`` ranks and returns the answers in rank order.
    ``function`` must be importable (the workers are forked from a fork server, not
    from the calling process, and receive it by name).
    """

    def __init__(self, size: int = MAX_WORLD, backend: str = "gloo",
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        self.size, self.backend, self.timeout_s = size, backend, timeout_s
        self.processes, self.conns = [], []
        self.world = 0
        self.generation = 0
        self.store_dir = None

    @property
    def running(self) -> bool:
        """Whether the workers are started (and not yet stopped)."""
        return bool(self.processes)

    def start(self) -> None:
        """Spawn the workers and wait until each has imported torch."""
        import torch.multiprocessing as mp

        from bn_invariants.invariants.distributed.worker import serve
        context = mp.get_context("forkserver")
        # the fork server imports torch and the worker once; each worker (and each
        # restart after a failure) is then a cheap fork of it, never of pytest itself
        context.set_forkserver_preload(["torch", "torch.distributed", serve.__module__])
        self.store_dir = tempfile.mkdtemp(prefix="bn-dist-")
        collective_timeout = 2 * self.timeout_s + 10  # the pool's own timeout fires first
        for rank in range(self.size):
            parent, child = context.Pipe()
            process = context.Process(target=serve, daemon=True, name=f"bn-dist-rank{rank}",
                                      args=(rank, child, self.store_dir, self.backend,
                                            collective_timeout))
            process.start()
            child.close()
            self.processes.append(process)
            self.conns.append(parent)
        self._gather(range(self.size), "start", max(START_TIMEOUT_S, self.timeout_s))

    def run(self, function, requests: list) -> list:
        """Answers of ``function(requests[r])`` on ranks r = 0..W-1, W = len(requests)."""
        world = len(requests)
        if not 1 <= world <= self.size:
            raise ValueError(f"{world} ranks requested, but this pool has {self.size} workers")
        if not self.running:
            self.start()
        if world != self.world:
            self._regroup(world)
        for rank, request in enumerate(requests):
            self.conns[rank].send(("task", function, request))
        return self._gather(range(world), f"{function.__name__} on {world} ranks", self.timeout_s)

    def _regroup(self, world: int) -> None:
        self.generation += 1
        for rank in range(world):
            self.conns[rank].send(("group", world, self.generation))
        self.world = 0
        self._gather(range(world), f"joining a group of {world} ranks", self.timeout_s)
        self.world = world

    def _gather(self, ranks, what: str, timeout_s: float) -> list:
        answers = {}
        pending = {self.conns[r]: r for r in ranks}
        deadline = time.monotonic() + timeout_s
        while pending:
            ready = multiprocessing.connection.wait(list(pending),
                                                    max(0.0, deadline - time.monotonic()))
            if not ready:
                late = sorted(pending.values())
                self.stop()
                raise WorkerTimeout(
                    f"{what}: rank{'s' if len(late) > 1 else ''} {', '.join(map(str, late))} "
                    f"did not answer within {timeout_s:g} s (a collective not every rank "
                    f"reached?); the worker pool was stopped")
            for conn in ready:
                rank = pending.pop(conn)
                try:
                    status, value = conn.recv()
                except (EOFError, OSError):
                    self.processes[rank].join(timeout=5.0)
                    code = self.processes[rank].exitcode
                    self.stop()
                    raise WorkerCrash(f"{what}: the worker of rank {rank} died (exit code "
                                      f"{code}); the worker pool was stopped") from None
                if status == "error":
                    self.stop()
                    raise RankError(f"{what}: rank {rank} raised {value}")
                answers[rank] = value
        return [answers[r] for r in sorted(answers)]

    def stop(self) -> None:
        """Stop every worker (killing any that does not leave at once)."""
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(timeout=1.0)
            if process.is_alive():
                process.kill()
                process.join(timeout=5.0)
        for conn in self.conns:
            conn.close()
        self.processes, self.conns, self.world = [], [], 0
        if self.store_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)
            self.store_dir = None


_POOLS: dict = {}


def shared_pool(backend: str = "gloo", timeout_s: float | None = None) -> WorkerPool:
    """The process-wide pool for ``backend`` (created on first use, stopped at exit);
    ``timeout_s`` replaces its timeout when given."""
    pool = _POOLS.get(backend)
    if pool is None:
        pool = _POOLS[backend] = WorkerPool(MAX_WORLD, backend)
    if timeout_s is not None:
        pool.timeout_s = timeout_s
    return pool


@atexit.register
def _stop_pools() -> None:
    for pool in _POOLS.values():
        pool.stop()
