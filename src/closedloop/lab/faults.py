"""Named fault points for crash tests: a no-op unless ``$CLOSEDLOOP_FAULT_POINT`` or ``$CLOSEDLOOP_FAULT_LOG`` is set.

The campaign code calls :func:`point` at the moments a crash would hurt most (between a temporary
file and its rename, between two epochs, after a case file is written but before the ledger knows).
A test sets, for one run of the campaign in a subprocess::

    CLOSEDLOOP_FAULT_POINT="simulate:progress@3"   # SIGKILL this process the 3rd time the point is reached
    CLOSEDLOOP_FAULT_LOG=/tmp/events.log            # append "pid name detail" for every point reached

SIGKILL, not an exception: nothing is unwound, no ``finally`` runs, exactly as when the machine dies.
The points (see :data:`POINTS`) are counted per process, across threads.
"""
from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV_POINT = "CLOSEDLOOP_FAULT_POINT"
ENV_LOG = "CLOSEDLOOP_FAULT_LOG"

POINTS = {
    "propose:planned": "a round's proposal is computed, not yet in the ledger",
    "simulate:start": "a simulation begins (detail: case id)",
    "simulate:progress": "the reference solver reached an output time (mid-simulation)",
    "simulate:end": "a case file is written, the ledger does not know yet (detail: case id)",
    "validate:done": "the round's predictions are computed, not yet in the ledger",
    "train:epoch": "an epoch of training finished (no partial state is ever saved)",
    "checkpoint:written": "a checkpoint is renamed into place, its checksum not yet indexed",
    "retrain:done": "a round's checkpoint and checksum are stored (the round is complete)",
    "rename:<label>": "a temporary file is written and fsynced, not yet renamed (labels: ledger, case, "
                      "checkpoint, index, state, figure, report)",
}

_lock = threading.Lock()
_hits: Counter[str] = Counter()


def parse(spec: str) -> tuple[str, int]:
    """``"name@n"`` → (name, n); ``"name"`` → (name, 1)."""
    name, _, nth = spec.strip().partition("@")
    if not name or (nth and not nth.isdigit()) or (nth and int(nth) < 1):
        raise ValueError(f"${ENV_POINT}: expected 'point' or 'point@n' with n >= 1, got {spec!r}")
    return name, int(nth) if nth else 1


def point(name: str, detail: str = "") -> None:
    """Mark that ``name`` is reached; log it and SIGKILL this process if the armed fault says so."""
    spec = os.environ.get(ENV_POINT)
    log = os.environ.get(ENV_LOG)
    if not spec and not log:
        return
    with _lock:
        _hits[name] += 1
        count = _hits[name]
        if log:
            # one short O_APPEND write per line: lines of concurrent processes never interleave
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{os.getpid()} {name} {detail}\n".encode())
            finally:
                os.close(fd)
        if spec and parse(spec) == (name, count):
            os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    """Forget the counts (for in-process tests)."""
    with _lock:
        _hits.clear()
