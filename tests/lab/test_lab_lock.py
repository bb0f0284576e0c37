"""One campaign per directory: the flock, the holder's record, and taking over a dead holder's lock."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from closedloop.lab.lock import LOCK_NAME, CampaignLocked, campaign_lock

HOLD = """
import sys
from closedloop.lab.lock import campaign_lock
with campaign_lock(sys.argv[1], owner="other-run"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/camp until it is told to stop (or killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "camp")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_lock_records_holder_and_releases_cleanly(tmp_path):
    with campaign_lock(tmp_path, owner="run-1") as info:
        record = json.loads((tmp_path / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["owner"] == "run-1" and info.stale is None and info.notes == []
    assert (tmp_path / LOCK_NAME).read_text() == ""  # released: an empty record, the file stays
    with campaign_lock(tmp_path) as again:
        assert again.stale is None


def test_second_campaign_in_same_process_refused(tmp_path):
    with campaign_lock(tmp_path):
        with pytest.raises(CampaignLocked, match=f"pid {os.getpid()} on host {socket.gethostname()}"):
            with campaign_lock(tmp_path):
                pass


def test_other_process_holding_the_directory_is_named(tmp_path, holder):
    with pytest.raises(CampaignLocked) as err:
        with campaign_lock(tmp_path / "camp"):
            pass
    message = str(err.value)
    assert str(tmp_path / "camp") in message and f"pid {holder.pid} on host {socket.gethostname()}" in message
    assert "flow run other-run" in message and "in use" in message
    holder.stdin.close()  # let it finish: then the directory is free
    holder.wait(timeout=30)
    with campaign_lock(tmp_path / "camp") as info:
        assert info.stale is None


def test_lock_of_killed_process_is_taken_over(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    record = json.loads((tmp_path / "camp" / LOCK_NAME).read_text())
    assert record["pid"] == holder.pid  # the dead holder's record is still there ...
    with campaign_lock(tmp_path / "camp") as info:  # ... but its flock went with it
        assert info.stale["pid"] == holder.pid
        assert f"pid {holder.pid} is not running" in info.notes[0] and "stale lock" in info.notes[0]
        assert json.loads((tmp_path / "camp" / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_stale_record_from_another_host_is_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    with campaign_lock(tmp_path) as info:
        assert info.stale["host"] == "elsewhere"
        assert "pid 1 on host elsewhere" in info.notes[0] and "released" in info.notes[0]
