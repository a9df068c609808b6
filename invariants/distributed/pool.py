"""Pools of worker processes, one per world size, each one torch.distributed process group
for its whole life.

A pool of W workers is started the first time an example asks for W ranks; each worker
joins the default process group of W ranks once, and keeps it until the pool stops.
No group is ever destroyed under a subject: whatever a subject binds (a module-level
``dist.group.WORLD``, ``torch.distributed.nn.functional.all_reduce``'s default group, a
``functools.partial`` over a group) stays the group it runs in, as in a training job.
Rendezvous goes through a file store in the pool's own temporary directory, so parallel
pools never share a port or a file.

Nothing hangs, and nothing slow is taken for a hang (``watch.py``): while a pending rank
computes, the pool waits; once every pending rank sits idle in a collective that cannot
complete (another rank answered, or they wait at different collectives, or all at the
same one for SAME_SPOT_LOOKS looks), the request ends in a WorkerHang naming each rank's
collective and call site.
The timeout is the last resort: ``timeout_s`` seconds in which no pending rank made any
progress.  A rank that raises, a worker that dies, a hang and a timeout each end the
request with a one-line PoolError and stop that pool (the next request for W starts a
fresh one).
"""
from __future__ import annotations

import atexit
import multiprocessing.connection
import os
import shutil
import tempfile
import time

from bn_invariants.invariants.distributed.watch import BUSY_TICKS, cpu_ticks, describe, is_hang

DEFAULT_TIMEOUT_S = 60.0
"""Seconds without progress on any pending rank before a request is given up."""
START_TIMEOUT_S = 180.0
"""Seconds the workers may take to start (importing torch on a busy machine)."""
HANG_S = 5.0
"""Seconds every pending rank must sit idle in a collective before it counts as a hang
(at most half the timeout)."""
SAME_SPOT_LOOKS = 3
"""Looks (HANG_S apart) finding every rank idle in the same collective before that too
counts as a hang: a collective every rank is in completes in milliseconds, so they are
at different calls of it (one rank ran one more)."""
POLL_S = 0.5
"""Seconds between two looks at the pending ranks."""
MAX_WORLD = 4


class PoolError(Exception):
    """A distributed request failed: a rank raised, hung, died or made no progress."""


class RankError(PoolError):
    """A rank raised while running a request; the message names it, says whether the
    exception is the subject's or the suite's, and where."""


class WorkerHang(PoolError):
    """Ranks wait in collectives that cannot complete; the message names them."""


class WorkerTimeout(PoolError):
    """Pending ranks made no progress (no CPU, no answer) within the timeout."""


class WorkerCrash(PoolError):
    """A worker process died while the pool was waiting for it."""


class WorkerPool:
    """``world`` worker processes in one process group, using ``backend`` ("gloo" on the
    CPU, "nccl" on CUDA).

    ``run(function, requests)`` runs ``function(requests[r])`` on rank r and returns the
    answers in rank order.  ``function`` must be importable (the workers are forked from
    a fork server, not from the calling process, and receive it by name).
    """

    def __init__(self, world: int, backend: str = "gloo", timeout_s: float = DEFAULT_TIMEOUT_S):
        self.world, self.backend, self.timeout_s = world, backend, timeout_s
        self.processes, self.conns, self.watches = [], [], []
        self.store_dir = None

    @property
    def running(self) -> bool:
        """Whether the workers are started (and not yet stopped)."""
        return bool(self.processes)

    def start(self) -> None:
        """Spawn the workers and wait until each has joined the group."""
        import torch.multiprocessing as mp

        from bn_invariants.invariants.distributed.worker import serve
        context = mp.get_context("forkserver")
        # the fork server imports torch and the worker once; each worker (and each
        # restart after a failure) is then a cheap fork of it, never of pytest itself
        context.set_forkserver_preload(["torch", "torch.distributed", serve.__module__])
        self.store_dir = tempfile.mkdtemp(prefix=f"bn-dist-{self.world}-")
        store = os.path.join(self.store_dir, "store")
        collective_timeout = 2 * self.timeout_s + 10  # the pool's own timeout fires first
        for rank in range(self.world):
            parent, child = context.Pipe()
            watch, watched = context.Pipe()
            process = context.Process(target=serve, daemon=True, name=f"bn-dist-rank{rank}",
                                      args=(rank, self.world, child, watched, store, self.backend,
                                            collective_timeout))
            process.start()
            child.close()
            watched.close()
            self.processes.append(process)
            self.conns.append(parent)
            self.watches.append(watch)
        self._gather(f"joining a group of {self.world} ranks", max(START_TIMEOUT_S, self.timeout_s))

    def run(self, function, requests: list) -> list:
        """Answers of ``function(requests[r])`` on ranks r = 0..W-1."""
        if len(requests) != self.world:
            raise ValueError(f"{len(requests)} requests, but this pool has {self.world} ranks")
        if not self.running:
            self.start()
        for rank, request in enumerate(requests):
            self.conns[rank].send(("task", function, request))
        return self._gather(f"{function.__name__} on {self.world} ranks", self.timeout_s)

    def _gather(self, what: str, timeout_s: float) -> list:
        answers, errors = {}, {}
        pending = {conn: rank for rank, conn in enumerate(self.conns)}
        ticks = {rank: cpu_ticks(p.pid) for rank, p in enumerate(self.processes)}
        progress = idle_since = time.monotonic()
        looks = 0  # consecutive looks finding every pending rank idle in a collective
        while pending:
            ready = multiprocessing.connection.wait(list(pending), POLL_S)
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
                (errors if status == "error" else answers)[rank] = value
            now = time.monotonic()
            busy = False
            for rank in pending.values():
                before, ticks[rank] = ticks[rank], cpu_ticks(self.processes[rank].pid)
                busy |= None not in (before, ticks[rank]) and ticks[rank] - before >= BUSY_TICKS
            if ready or busy:
                progress = idle_since = now
            if errors and (not pending or now - idle_since >= min(HANG_S, timeout_s / 2)):
                self.stop()  # the other ranks may wait in a collective the raising rank left
                raise RankError(f"{what}: {_raised(errors)}")
            if pending and now - idle_since >= min(HANG_S, timeout_s / 2):
                places = self._where(sorted(pending.values()))
                waiting = all(p is not None and p["collective"] for p in places.values())
                looks = looks + 1 if waiting else 0
                if is_hang(places, set(answers) | set(errors)) or looks >= SAME_SPOT_LOOKS:
                    self.stop()
                    raise WorkerHang(f"{what}: a collective not every rank reached (idle in "
                                     f"it for {now - progress:.0f} s): "
                                     f"{_places(places, answers)}; the worker pool was stopped")
                idle_since = now  # look again after another HANG_S
            if pending and now - progress >= timeout_s:
                places = self._where(sorted(pending.values()))
                self.stop()
                late = sorted(places)
                raise WorkerTimeout(
                    f"{what}: rank{'s' if len(late) > 1 else ''} {', '.join(map(str, late))} "
                    f"made no progress (no answer, no computation) for {timeout_s:g} s: "
                    f"{_places(places, answers)}; the worker pool was stopped")
        return [answers[r] for r in sorted(answers)]

    def _where(self, ranks) -> dict:
        """rank -> where its main thread stands (None when it does not say in time)."""
        for rank in ranks:
            try:
                self.watches[rank].send("where")
            except (OSError, ValueError):
                pass
        places = {}
        for rank in ranks:
            try:
                has = self.watches[rank].poll(2.0)
                places[rank] = self.watches[rank].recv() if has else None
            except (EOFError, OSError):
                places[rank] = None
        return places

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
        for conn in self.conns + self.watches:
            conn.close()
        self.processes, self.conns, self.watches = [], [], []
        if self.store_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)
            self.store_dir = None


def _raised(errors: dict) -> str:
    rank = min(errors)
    error = errors[rank]
    others = sorted(set(errors) - {rank})
    also = f" (rank{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} too)" \
        if others else ""
    suite = "; a bug in bn-invariants, please report it" if error["whose"] == "the suite's" else ""
    return (f"rank {rank} raised {error['what']}{also}; {error['whose']} exception, at "
            f"{error['where']}{suite}")


def _places(places: dict, answers: dict) -> str:
    said = [describe(rank, place) for rank, place in sorted(places.items())]
    if answers:
        done = sorted(answers)
        said.append(f"rank{'s' if len(done) > 1 else ''} {', '.join(map(str, done))} "
                    f"had answered")
    return "; ".join(said)


_POOLS: dict = {}


def shared_pool(backend: str = "gloo", world: int = 2,
                timeout_s: float | None = None) -> WorkerPool:
    """The process-wide pool of ``world`` ranks for ``backend`` (created on first use,
    stopped at exit); ``timeout_s`` replaces its timeout when given."""
    if not 1 <= world <= MAX_WORLD:
        raise ValueError(f"{world} ranks requested, but pools hold 1 to {MAX_WORLD}")
    pool = _POOLS.get((backend, world))
    if pool is None:
        pool = _POOLS[(backend, world)] = WorkerPool(world, backend)
    if timeout_s is not None:
        pool.timeout_s = timeout_s
    return pool


def stop_pools() -> None:
    """Stop every shared pool (each restarts on its next request)."""
    for pool in _POOLS.values():
        pool.stop()


atexit.register(stop_pools)
