"""The loop each worker process runs: join a process group, run tasks, answer.

Started by ``invariants.distributed.pool.WorkerPool`` (never imported by pytest's
own process for anything else).  Every message is a tuple on one pipe:

* ``("group", world, generation)``: leave the current process group, join a new one
  of ``world`` ranks (this worker is rank ``rank``) through a file store;
* ``("task", function, request)``: answer ``("ok", function(request))``, or
  ``("error", "Type: first line of the message")`` when it raises;
* ``("stop",)``: leave.
"""
from __future__ import annotations

import os
from datetime import timedelta


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _join(dist, backend: str, store_dir: str, rank: int, world: int, generation: int,
          timeout_s: float) -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
    store = os.path.join(store_dir, f"group-{generation}")
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))


def serve(rank: int, conn, store_dir: str, backend: str, collective_timeout_s: float) -> None:
    """Answer messages on ``conn`` until told to stop (or the pipe closes)."""
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    conn.send(("ok", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "stop":
            return
        try:
            if message[0] == "group":
                _join(dist, backend, store_dir, rank, message[1], message[2], collective_timeout_s)
                answer = None
            else:
                _, function, request = message
                answer = function(request)
        except Exception as exc:  # the parent reports it, naming this rank
            conn.send(("error", _one_line(exc)))
            continue
        conn.send(("ok", answer))
