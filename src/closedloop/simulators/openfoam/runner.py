"""Running one OpenFOAM tool in a case directory: environment, timeout, a log per tool, CPU time.

``run_openfoam(case, "blockMesh")`` runs ``blockMesh -case CASE`` with ``WM_PROJECT_DIR`` set (to
``/usr/share/openfoam`` where unset, Debian's layout), its output in ``CASE/log.blockMesh``, through the
simulators' one external-program runner (``simulators.external.run_tool``: timeout, process group, the
child's CPU seconds from ``os.wait4``). A non-zero exit, a timeout or a ``FOAM FATAL`` message in the
log raises :class:`OpenFOAMError` (a ``SimulatorFailed``) naming the tool, with the log's tail.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from closedloop.simulators.external import SimulatorFailed, ToolRun, log_tail, run_tool

DEFAULT_PROJECT_DIR = "/usr/share/openfoam"


class OpenFOAMError(SimulatorFailed):
    """An OpenFOAM tool failed: the message names it and the log, and carries the log's tail."""


class OpenFOAMMissing(SimulatorFailed):
    """No OpenFOAM on PATH: the message says what to install."""


def openfoam_env() -> dict[str, str]:
    """What every tool's environment adds to ours: WM_PROJECT_DIR where unset, FPE trapping on."""
    return {"WM_PROJECT_DIR": os.environ.get("WM_PROJECT_DIR", DEFAULT_PROJECT_DIR),
            "FOAM_SIGFPE": os.environ.get("FOAM_SIGFPE", "true")}


def require_openfoam(tool: str = "blockMesh") -> str:
    """The path of ``tool``, or :class:`OpenFOAMMissing` saying what to install."""
    path = shutil.which(tool)
    if path is None:
        raise OpenFOAMMissing(f"OpenFOAM's {tool} is not on PATH: install OpenFOAM (ESI v1912 on Debian: "
                              "`apt-get install openfoam`) or choose another simulator")
    return path


def run_openfoam(case: Path, tool: str, *args: str, timeout: float = 600.0, log_name: str | None = None) -> ToolRun:
    """Run ``tool -case case args…``; :class:`OpenFOAMError` unless it exits 0 without a FATAL error."""
    exe = require_openfoam(tool)
    log = case / f"log.{log_name or tool}"
    log.unlink(missing_ok=True)
    try:
        run = run_tool([exe, "-case", str(case), *args], case, log, env={**openfoam_env(), "PWD": str(case)},
                       timeout=timeout, what=f"OpenFOAM {tool}")
    except SimulatorFailed as err:
        raise OpenFOAMError(_with_fatal(str(err), log)) from None
    if "FOAM FATAL" in log.read_text(errors="replace"):
        raise OpenFOAMError(_with_fatal(f"OpenFOAM {tool}: reported a FOAM FATAL error; log {log}:\n"
                                        f"{log_tail(log)}", log))
    return run


def fatal_message(log: Path) -> str | None:
    """OpenFOAM's own error message in ``log`` (from ``--> FOAM FATAL`` to the blank line before the
    traceback or ``FOAM exiting``), or None."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    start = text.find("--> FOAM FATAL")
    if start < 0:
        return None
    end = min([i for i in (text.find("FOAM exiting", start), text.find("FOAM aborting", start),
                           text.find("#0 ", start)) if i > 0] or [len(text)])
    return "\n".join(line for line in text[start:end].strip().splitlines() if line.strip())


def _with_fatal(message: str, log: Path) -> str:
    fatal = fatal_message(log)
    return message if fatal is None or fatal in message else f"{message}\nOpenFOAM said:\n{fatal}"


def openfoam_version() -> str:
    """The installed OpenFOAM's version from a tool's banner (``Build  : OPENFOAM=1912 patch=200626``
    → "OpenFOAM v1912 (patch 200626)"); read by running blockMesh on an empty case, which prints the
    banner and stops."""
    exe = require_openfoam("blockMesh")
    with tempfile.TemporaryDirectory(prefix="closedloop-of-version-") as tmp:
        try:
            text = subprocess.run([exe, "-case", tmp], capture_output=True, text=True, env={**os.environ, **openfoam_env()},
                                  timeout=60, stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.TimeoutExpired):
            text = ""
    return version_from_banner(text)


def version_from_banner(text: str) -> str:
    m = re.search(r"OPENFOAM=(\d+)(?:\s+patch=(\d+))?", text)
    if m is None:
        return "OpenFOAM (unknown version)"
    return f"OpenFOAM v{m.group(1)}" + (f" (patch {m.group(2)})" if m.group(2) else "")


class Tools:
    """The tools one simulation runs, in order: each call of :meth:`run` is ``run_openfoam`` with this
    simulation's timeout, and its wall and CPU seconds are kept (``cpu_seconds``: their sum)."""

    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout
        self.runs: list[tuple[str, ToolRun]] = []

    def run(self, case: Path, tool: str, *args: str, log_name: str | None = None) -> ToolRun:
        run = run_openfoam(case, tool, *args, timeout=self.timeout, log_name=log_name)
        self.runs.append((log_name or tool, run))
        return run

    @property
    def cpu_seconds(self) -> float:
        return sum(r.cpu_seconds for _, r in self.runs)

    def seconds(self, *names: str) -> float:
        """Wall seconds of the runs called ``names`` (all runs when none is named)."""
        return sum(r.wall_seconds for n, r in self.runs if not names or n in names)
