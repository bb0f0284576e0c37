"""A two-level campaign end to end under the Prefect test harness: the cost-aware planner picks
points and levels, the ledger records each case's level and CPU-seconds, the budget in
CPU-seconds stops the loop."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from closedloop.flows.campaign import campaign
from closedloop.lab.config import load_campaign_config
from tests.lab.campaign.mf_config import mf_config_file

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_two_level_campaign_spends_by_level_and_stops_on_its_cpu_budget(tmp_path):
    path = mf_config_file(tmp_path, strategy='"multifidelity"', batch_size="3", rounds="4")
    out = tmp_path / "camp"
    state = campaign(str(path), str(out), max_cpu_seconds=0.05)  # spent by round 0 already
    assert state["status"] == "finished" and state["rounds_done"] == 1
    assert state["stop_reason"].startswith("compute budget spent")

    state = campaign(str(path), str(tmp_path / "camp2"), rounds=2)
    assert state["status"] == "finished" and state["rounds_done"] == 2
    ledger = pd.read_parquet(tmp_path / "camp2" / "ledger.parquet")
    assert ledger.groupby("round").size().to_dict() == {0: 4, 1: 3}
    assert set(ledger.loc[ledger["round"] == 1, "strategy"]) == {"multifidelity"}
    assert set(ledger["fidelity"]) <= {"coarse", "fine"} and ledger["fidelity"].notna().all()
    assert (ledger["cpu_seconds"] > 0).all() and ledger["rel_l2"].notna().all()
    config = load_campaign_config(path)
    space = config.design.space()
    params = [json.loads(p) for p in ledger["parameters"]]
    assert [p["fidelity"] for p in params] == ledger["fidelity"].tolist()
    assert bool(space.contains(space.as_tensor(params)).all())
    assert ledger["case_id"].is_unique


def test_async_mode_takes_levels_and_stops_on_its_cpu_budget(tmp_path):
    """The same levels and budget in async mode (the proposals with levels: test_campaign_cost.py):
    the compute budget stops the proposals, which async mode once ignored."""
    path = mf_config_file(tmp_path, strategy='"multifidelity"', batch_size="3", rounds="3")
    state = campaign(str(path), str(tmp_path / "spent"), mode="async", max_cpu_seconds=0.05)
    assert state["status"] == "finished" and state["stop_reason"].startswith("compute budget spent")
    ledger = pd.read_parquet(tmp_path / "spent" / "ledger.parquet")
    assert len(ledger) == 4 and set(ledger["status"]) == {"done"}  # the initial design, nothing after it
    assert ledger["fidelity"].tolist() == [json.loads(p)["fidelity"] for p in ledger["parameters"]]
    assert sorted(ledger["fidelity"]) == ["coarse", "coarse", "coarse", "fine"] and ledger["rel_l2"].notna().all()
