"""Fixtures for the lab tests: a tiny room scenario (3 output intervals) and its reference run."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.simulators import load_scenario, simulate

REPO = Path(__file__).resolve().parents[2]
ROOM_TOML = REPO / "configs" / "scenarios" / "room.toml"
SMOKE_TOML = REPO / "configs" / "smoke.toml"


@pytest.fixture(scope="session")
def tiny_scenario():
    return load_scenario(ROOM_TOML).with_parameters({"time.horizon": 30.0})


@pytest.fixture(scope="session")
def tiny_result(tiny_scenario):
    return simulate(tiny_scenario, device="cpu")
