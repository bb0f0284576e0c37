"""Running an external program for a simulation: timeout, environment, a log, and its CPU time.

    run_tool(argv, cwd, log) -> ToolRun(returncode, wall_seconds, cpu_seconds)

The program runs in its own process group (a timeout kills the whole group, grandchildren included),
stdout and stderr go to ``log`` (appended, with a header line per call), and its CPU time is the user +
system time of that child and of the descendants it waited for, read from ``os.wait4`` on its pid, so
simulations running side by side in one process each count only their own. A non-zero exit or a
timeout raises :class:`SimulatorFailed` with the log's tail: a ``RuntimeError``, so the campaign retries
it like any transient fault, then records the case ``failed`` with that text.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 20


class SimulatorFailed(RuntimeError):
    """An external simulation that exited non-zero, timed out or wrote output that cannot be read."""


@dataclass(frozen=True)
class ToolRun:
    returncode: int
    wall_seconds: float
    cpu_seconds: float


def log_tail(log: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``log`` (empty when there is none)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_tool(argv: Sequence[str], cwd: Path, log: Path, *, env: Mapping[str, str] | None = None,
             timeout: float | None = None, what: str = "command") -> ToolRun:
    """Run ``argv`` in ``cwd`` (``env`` added to this process's environment), logging to ``log``.

    Raises :class:`SimulatorFailed` (naming ``what``, with the log tail) on a non-zero exit, a timeout
    (after killing the process group) or a program that cannot be started.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(list(argv), cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as err:
            raise SimulatorFailed(f"{what}: cannot start {argv[0]!r} ({err.strerror or err})") from None
        status, usage = _wait(proc, timeout, t0)
        wall = time.perf_counter() - t0
    if status is None:
        raise SimulatorFailed(f"{what}: timed out after {timeout:g} s (killed); log {log}:\n{log_tail(log)}")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SimulatorFailed(f"{what}: exit code {code}; log {log}:\n{log_tail(log)}")
    return ToolRun(code, wall, usage.ru_utime + usage.ru_stime)


def _wait(proc: subprocess.Popen, timeout: float | None, t0: float) -> tuple[int | None, os.struct_rusage | None]:
    """(wait status, resource usage) of ``proc``; (None, None) after killing it at the timeout."""
    delay = 0.002
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen consistent
            return status, usage
        if timeout is not None and time.perf_counter() - t0 > timeout:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            return None, None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
