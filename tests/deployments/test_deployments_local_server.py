"""deployments/local_server.py without a real server (the live tests start real ones through it)."""
from __future__ import annotations

import socket
import sys

import pytest

from closedloop.deployments import local_server as ls


def test_clean_env_keeps_nothing_of_the_callers_prefect(monkeypatch, tmp_path):
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere:4200/api")
    monkeypatch.setenv("PREFECT_PROFILE", "mine")
    env = ls.clean_env(tmp_path / "home")
    assert {k for k in env if k.startswith("PREFECT_")} == {"PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED",
                                                             "PREFECT_LOGGING_LEVEL"}
    assert env["PREFECT_HOME"] == str(tmp_path / "home") and env["CLOSEDLOOP_FLOW_CACHE"] == "off"


def test_free_port_can_be_bound():
    port = ls.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_a_server_that_exits_is_reported_with_its_log(monkeypatch, tmp_path):
    fake = tmp_path / "prefect"
    fake.write_text(f"#!{sys.executable}\nimport sys\nprint('no database here')\nsys.exit(3)\n")
    fake.chmod(0o755)
    monkeypatch.setattr(ls, "PREFECT", fake)
    with pytest.raises(ls.ServerExited, match=r"rc=3\):\nno database here"), ls.local_server(tmp_path, timeout=30):
        pass


def test_a_server_that_never_answers_times_out_and_is_stopped(monkeypatch, tmp_path):
    fake = tmp_path / "prefect"
    fake.write_text(f"#!{sys.executable}\nimport time\nprint('starting', flush=True)\ntime.sleep(600)\n")
    fake.chmod(0o755)
    monkeypatch.setattr(ls, "PREFECT", fake)
    started = []
    real_popen = ls.subprocess.Popen
    monkeypatch.setattr(ls.subprocess, "Popen", lambda *a, **k: started.append(real_popen(*a, **k)) or started[-1])
    with pytest.raises(ls.ServerTimeout, match="within 1 s"), ls.local_server(tmp_path, timeout=1):
        pass
    assert started[0].poll() is not None  # the process group was stopped
