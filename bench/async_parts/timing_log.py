"""The library's step timings (``closedloop.lab.timing``) appended to one log file from any process.

A Dask preload for the simulation worker (``dask worker --preload bench/async_parts/timing_log.py``:
Dask calls :func:`dask_setup`) and :func:`listen` in the campaign process. Each line is
``pid label step start end`` (wall-clock seconds), one short ``O_APPEND`` write, so lines of several
processes never interleave. ``$CLOSEDLOOP_TIMING_LOG`` names the file.
"""
from __future__ import annotations

import os
from pathlib import Path

from closedloop.lab import timing

ENV = "CLOSEDLOOP_TIMING_LOG"


def recorder(label: str, path: str | None = None):
    """A timing listener that appends ``pid label step start end`` to ``path`` (default ``$CLOSEDLOOP_TIMING_LOG``)."""
    target = path or os.environ[ENV]

    def record(step: str, start: float, end: float) -> None:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {label} {step} {start:.6f} {end:.6f}\n".encode())
        finally:
            os.close(fd)
    return record


def listen(label: str) -> None:
    """Record this process's timed steps under ``label`` until it exits."""
    timing.add_listener(recorder(label))


def dask_setup(worker) -> None:
    """Dask's preload hook: record the worker's steps (its simulations) under the worker's name."""
    listen(str(worker.name))


def read(path: Path) -> list[dict]:
    """The log's intervals: ``{"pid", "label", "step", "start", "end"}``."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        pid, label, step, start, end = line.split()
        out.append({"pid": int(pid), "label": label, "step": step, "start": float(start), "end": float(end)})
    return out
