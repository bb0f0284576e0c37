"""Fixtures for the lab tests: a tiny room scenario (3 output intervals), its reference run, its case
and a campaign store holding that case."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.lab.store import CampaignStore, write_case
from closedloop.simulators import load_scenario, simulate
from tests.lab.case_files import make_case

REPO = Path(__file__).resolve().parents[2]
ROOM_TOML = REPO / "configs" / "scenarios" / "room.toml"
SMOKE_TOML = REPO / "configs" / "smoke.toml"


@pytest.fixture(scope="session")
def tiny_scenario():
    return load_scenario(ROOM_TOML).with_parameters({"time.horizon": 30.0})


@pytest.fixture(scope="session")
def tiny_result(tiny_scenario):
    return simulate(tiny_scenario, device="cpu")


@pytest.fixture()
def case(tiny_scenario, tiny_result):
    return make_case(tiny_scenario, tiny_result)


@pytest.fixture
def store_with_case(tmp_path, tiny_scenario, tiny_result):
    store = CampaignStore(tmp_path / "camp")
    case = make_case(tiny_scenario, tiny_result)
    sha = write_case(store.case_path(case.case_id), case)
    store.upsert([{"case_id": case.case_id, "round": 0, "status": "done", "strategy": "sobol",
                   "parameters": "{}", "case_sha256": sha}])
    return store, case.case_id, sha
