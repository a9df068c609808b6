"""Telling a hang from slow progress: where each rank is, and whether it is computing.

A worker answers ``where(frame)`` for its main thread from a side thread (a rank
waiting in a gloo or NCCL collective has released the GIL), and the parent reads each
worker's main-thread CPU time from ``/proc``.  A rank that burns CPU is computing,
however slowly; a rank idle inside a collective is waiting for the others.  Every
pending rank idle in a collective, while another rank has already answered or waits
in a different collective, is a hang: no rank can make the collectives meet.
"""
from __future__ import annotations

import os
import sys
import threading
import traceback

BUSY_TICKS = 2
"""Clock ticks of CPU (at 100 Hz, 20 ms) a rank's main thread must use between two
looks to count as computing."""


def cpu_ticks(pid: int) -> int | None:
    """User + system clock ticks of process ``pid``'s main thread (None off Linux, or
    once the process is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def _torch_dirs() -> tuple:
    import torch
    root = os.path.dirname(os.path.realpath(torch.__file__)) + os.sep
    return root, os.path.join(root, "distributed", "")


def where(frame) -> dict:
    """Where a thread stands: ``collective`` (the torch.distributed function it is inside,
    '' when none) and ``site`` ('file:line in function', the innermost frame outside
    torch: the code that called it)."""
    root, distributed = _torch_dirs()
    stack = traceback.extract_stack(frame)
    paths = [os.path.realpath(f.filename) for f in stack]
    inside = [f.name for f, p in zip(stack, paths)
              if p.startswith(distributed) and not f.name.startswith("_") and f.name != "wrapper"]
    outside = [f for f, p in zip(stack, paths) if not p.startswith(root)]
    site = outside[-1] if outside else stack[-1]
    return {"collective": inside[-1] if inside else "",
            "site": f"{short_path(site.filename)}:{site.lineno} in {site.name}"}


def short_path(filename: str) -> str:
    """``filename`` relative to the current directory when it lies below it."""
    path = os.path.realpath(filename)
    here = os.getcwd() + os.sep
    return path[len(here):] if path.startswith(here) else path


def answer_where(conn) -> None:
    """Start a daemon thread that answers each message on ``conn`` with ``where`` of this
    process's main thread."""
    main = threading.main_thread().ident

    def serve():
        while True:
            try:
                conn.recv()
            except (EOFError, OSError):
                return
            frame = sys._current_frames().get(main)
            conn.send(where(frame) if frame is not None else {"collective": "", "site": "?"})

    threading.Thread(target=serve, daemon=True, name="bn-dist-where").start()


def describe(rank: int, place: dict | None) -> str:
    """'rank 0 waits in all_reduce (called from x.py:3 in forward)', or what it does."""
    if place is None:
        return f"rank {rank} did not say where it is"
    if place["collective"]:
        return f"rank {rank} waits in {place['collective']} (called from {place['site']})"
    return f"rank {rank} is at {place['site']}"


def is_hang(places: dict, answered) -> bool:
    """Whether pending ranks at ``places`` (rank -> where, every one idle) can never meet:
    each waits in a collective, and another rank has answered or waits elsewhere."""
    if not places or any(p is None or not p["collective"] for p in places.values()):
        return False
    spots = {(p["collective"], p["site"]) for p in places.values()}
    return bool(answered) or len(spots) > 1
