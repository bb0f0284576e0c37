"""The ephemeral Prefect server gets 120 s to start (a loaded machine took longer than Prefect's 20 s)."""
from __future__ import annotations

import os
import subprocess
import sys

CODE = ("import closedloop.flows.campaign\n"
        "from prefect.settings import get_current_settings\n"
        "print(get_current_settings().server.ephemeral.startup_timeout_seconds)\n")


def timeout_seen(**env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"}
    out = subprocess.run([sys.executable, "-c", CODE], env={**clean, **env}, capture_output=True, text=True,
                         timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_default_is_generous_and_the_user_can_choose():
    assert timeout_seen() == 120
    assert timeout_seen(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="45") == 45
