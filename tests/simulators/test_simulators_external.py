"""run_tool: the exit code, the timeout (the whole process group killed), the log, and the child's own CPU time."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from closedloop.simulators.external import SimulatorFailed, log_tail, run_tool


def test_cpu_seconds_are_the_childs_own(tmp_path: Path):
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\nprint('burnt')"
    t0 = time.process_time()
    run = run_tool([sys.executable, "-c", burn], tmp_path, tmp_path / "log.txt")
    assert run.returncode == 0 and 0.3 <= run.cpu_seconds < 1.5
    assert time.process_time() - t0 < 0.2  # this process only waited
    assert log_tail(tmp_path / "log.txt").endswith("burnt")


def test_non_zero_exit_names_the_code_and_keeps_the_log(tmp_path: Path):
    with pytest.raises(SimulatorFailed, match=r"simulation.command x: exit code 4; log .*\n.*line 2") as err:
        run_tool([sys.executable, "-c", "print('line 1'); print('line 2'); raise SystemExit(4)"], tmp_path,
                 tmp_path / "log.txt", what="simulation.command x")
    assert "line 1" in str(err.value)


def test_timeout_kills_the_group_grandchildren_included(tmp_path: Path):
    pidfile = tmp_path / "grandchild.pid"
    script = (f"import subprocess, sys, time\np = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              f"open({str(pidfile)!r}, 'w').write(str(p.pid))\ntime.sleep(60)")
    t0 = time.perf_counter()
    with pytest.raises(SimulatorFailed, match="timed out after 1 s"):
        run_tool([sys.executable, "-c", script], tmp_path, tmp_path / "log.txt", timeout=1.0)
    assert time.perf_counter() - t0 < 10
    pid = int(pidfile.read_text())
    time.sleep(0.2)
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "zombie" in status.read_text() or "State:\tZ" in status.read_text()


def test_a_program_that_cannot_start(tmp_path: Path):
    with pytest.raises(SimulatorFailed, match="cannot start '/no/such/program'"):
        run_tool(["/no/such/program"], tmp_path, tmp_path / "log.txt")


def test_environment_is_added(tmp_path: Path):
    run_tool([sys.executable, "-c", "import os; print(os.environ['FOO'], 'PATH' in os.environ)"], tmp_path,
             tmp_path / "log.txt", env={"FOO": "bar"})
    assert log_tail(tmp_path / "log.txt").endswith("bar True")
