"""The loop each worker process runs: join its pool's process group once, run tasks,
answer.

Started by ``invariants.distributed.pool.WorkerPool`` (never imported by pytest's own
process for anything else).  The worker joins the default process group of its pool's
W ranks before anything else and never leaves it: a subject imported and built here
binds the group it will run in, for the life of the process, as in a training job.
Every message is a tuple on one pipe:

* ``("task", function, request)``: answer ``("ok", function(request))``, or
  ``("error", {"what", "whose", "where"})`` when it raises;
* ``("stop",)``: leave.

A second pipe answers where the main thread stands (``watch.answer_where``).
A worker's stderr is the terminal, outside pytest's capture: deprecation warnings (say,
of torch.distributed.nn.functional) would print once per rank and pool, so they are
ignored here.
"""
from __future__ import annotations

import os
import traceback
import warnings
from datetime import timedelta

from bn_invariants.invariants.distributed.watch import answer_where, short_path


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def blame(exc: BaseException) -> dict:
    """What a rank raised, whose it is ("the subject's" or "the suite's") and where:
    the innermost frame of the subject, or of the suite when it is the suite's."""
    import torch

    from bn_invariants.invariants.blame import is_suite_file, raised_by_suite
    suite = raised_by_suite(exc)
    torch_dir = os.path.dirname(os.path.realpath(torch.__file__)) + os.sep
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if is_suite_file(f.filename) == suite
           and not os.path.realpath(f.filename).startswith(torch_dir)]
    at = (own or frames)[-1]
    return {"what": _one_line(exc), "whose": "the suite's" if suite else "the subject's",
            "where": f"{short_path(at.filename)}:{at.lineno} in {at.name}"}


def serve(rank: int, world: int, conn, watch_conn, store: str, backend: str,
          collective_timeout_s: float) -> None:
    """Join the group of ``world`` ranks as ``rank``, then answer messages on ``conn``
    until told to stop (or the pipe closes)."""
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    for category in (DeprecationWarning, FutureWarning):
        warnings.simplefilter("ignore", category)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=collective_timeout_s))
    answer_where(watch_conn)
    conn.send(("ok", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "stop":
            return
        _, function, request = message
        try:
            answer = function(request)
        except Exception as exc:  # the parent reports it, naming this rank
            conn.send(("error", blame(exc)))
            continue
        conn.send(("ok", answer))
