"""Fault points: a no-op unless armed; armed, they log and SIGKILL the process at the n-th hit."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from closedloop.lab import faults
from closedloop.lab.atomic import atomic_write_text

RUN = """
from closedloop.lab import faults
for i in range(5):
    print(i, flush=True)
    faults.point("demo:step", str(i))
"""


def test_parse():
    assert faults.parse("simulate:progress@3") == ("simulate:progress", 3)
    assert faults.parse("train:epoch") == ("train:epoch", 1)
    for bad in ("", "@2", "x@0", "x@two"):
        with pytest.raises(ValueError, match="CLOSEDLOOP_FAULT_POINT"):
            faults.parse(bad)


def test_unarmed_point_is_a_no_op(monkeypatch, tmp_path):
    monkeypatch.delenv(faults.ENV_POINT, raising=False)
    monkeypatch.delenv(faults.ENV_LOG, raising=False)
    faults.point("anything")  # neither logs nor kills


def test_log_records_points_and_atomic_writes(monkeypatch, tmp_path):
    log = tmp_path / "events.log"
    monkeypatch.setenv(faults.ENV_LOG, str(log))
    monkeypatch.delenv(faults.ENV_POINT, raising=False)
    faults.reset()
    faults.point("simulate:start", "abc")
    atomic_write_text(tmp_path / "x.json", "{}", label="state")
    lines = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    assert lines == ["simulate:start abc", "rename:state x.json"]


def test_armed_point_kills_at_nth_hit(tmp_path):
    log = tmp_path / "events.log"
    env = {"CLOSEDLOOP_FAULT_POINT": "demo:step@3", "CLOSEDLOOP_FAULT_LOG": str(log), "PATH": ""}
    proc = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.split() == ["0", "1", "2"]
    assert [line.split()[-1] for line in log.read_text().splitlines()] == ["0", "1", "2"]


def test_kill_between_write_and_rename_leaves_only_a_temporary(tmp_path):
    target = tmp_path / "ledger.parquet"
    target.write_text("old")
    code = (f"from closedloop.lab.atomic import atomic_write_text\n"
            f"atomic_write_text({str(target)!r}, 'new', label='ledger')")
    env = {"CLOSEDLOOP_FAULT_POINT": "rename:ledger", "PATH": ""}
    proc = subprocess.run([sys.executable, "-c", code], env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_text() == "old"
    temps = list(tmp_path.glob(".*.tmp"))
    assert len(temps) == 1 and temps[0].read_text() == "new"
    from closedloop.lab.atomic import remove_temp_files

    assert remove_temp_files(tmp_path) == temps and not temps[0].exists()
