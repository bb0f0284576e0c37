"""Shared fixtures: a Prefect test server for the session and small, fast campaign configs."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Tests never read or write the user's flow cache.
os.environ["CLOSEDLOOP_FLOW_CACHE"] = "off"
# Eager physics unless a test asks for the fused kernels (tests/surrogates/test_surrogates_layers.py,
# tests/physics/test_physics_kernels.py): compiling each test's grid would cost more than it saves.
os.environ.setdefault("CLOSEDLOOP_COMPILE", "off")

REPO = Path(__file__).resolve().parents[1]
ROOM = REPO / "configs" / "scenarios" / "room.toml"
SMOKE = REPO / "configs" / "smoke.toml"


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def fast_config_text(**replace: str) -> str:
    """configs/smoke.toml with an absolute scenario path and few epochs (1 of the physics stage, 3 of the
    closure stage, 2 per warm start): the plumbing of a campaign, not its learning."""
    text = SMOKE.read_text()
    text = text.replace('scenario = "scenarios/room.toml"', f'scenario = "{ROOM.as_posix()}"')
    for key, value in {"physics_stage_epochs": "1", "epochs": "3", "warm_start_epochs": "2", **replace}.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    return text


@pytest.fixture
def fast_config(tmp_path: Path) -> Path:
    path = tmp_path / "fast.toml"
    path.write_text(fast_config_text())
    return path
