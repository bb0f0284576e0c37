"""campaign.json and `campaign status` tell the truth: finished, failed, cancelled or crashed."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from prefect import get_client
from prefect.states import Running
from typer.testing import CliRunner

from closedloop.cli import app
from closedloop.flows.campaign import campaign
from closedloop.lab.campaign import learn
from closedloop.lab.store import CampaignStore
from closedloop.lab.lock import LOCK_NAME, campaign_lock, is_held
from closedloop.tasks.campaign import mark_crashed
from tests.conftest import fast_config_text

pytestmark = pytest.mark.usefixtures("prefect_harness")


def status_line(directory: Path) -> str:
    result = CliRunner().invoke(app, ["campaign", "status", str(directory)])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(fast_config_text())
    return path


def test_a_failed_run_says_failed_with_the_reason(config: Path, tmp_path: Path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("training diverged")

    monkeypatch.setattr(learn, "train", broken)
    with pytest.raises(RuntimeError, match="training diverged"):
        campaign(str(config), str(tmp_path / "camp"), rounds=1)
    state = json.loads((tmp_path / "camp" / "campaign.json").read_text())
    assert state["status"] == "failed" and state["stop_reason"] == "RuntimeError: training diverged"
    assert state["history"][-1]["status"] == "failed" and state["cases_done"] == 4
    assert "status: failed;" in status_line(tmp_path / "camp")


def test_a_cancelled_run_says_cancelled(config: Path, tmp_path: Path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(learn, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        campaign(str(config), str(tmp_path / "camp"), rounds=1)
    state = json.loads((tmp_path / "camp" / "campaign.json").read_text())
    assert state["status"] == "cancelled" and state["stop_reason"] == "KeyboardInterrupt"


def test_a_killed_run_is_told_crashed_then_resumed(config: Path, tmp_path: Path):
    out = tmp_path / "camp"
    first = campaign(str(config), str(out), rounds=1)
    assert first["status"] == "finished"
    store = CampaignStore(out)  # a real campaign's journal rebuilds its ledger exactly
    pd.testing.assert_frame_equal(store.rebuild_ledger(), store.read_ledger())
    # what a run killed by SIGKILL leaves: campaign.json 'running' and its lock record, the flock gone
    state = json.loads((out / "campaign.json").read_text())
    (out / "campaign.json").write_text(json.dumps({**state, "status": "running"}))
    record = {"pid": 999999, "host": "elsewhere", "started": "2026-12-01T00:00:00+00:00", "owner": None}
    (out / LOCK_NAME).write_text(json.dumps(record))
    assert not is_held(out)
    assert "status: crashed (campaign.json says running, but no live process" in status_line(out)
    second = campaign(str(config), str(out), rounds=2)
    assert second["status"] == "finished" and second["rounds_done"] == 2
    statuses = [h["status"] for h in second["history"]]
    assert statuses == ["finished", "crashed", "finished"]
    assert "pid 999999 on elsewhere" in second["history"][1]["reason"]
    with campaign_lock(out):
        assert is_held(out)


def test_the_dead_runs_flow_run_is_marked_crashed():
    from prefect import flow

    @flow(name="placeholder")
    def placeholder() -> None:
        pass

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(placeholder, state=Running())
        assert mark_crashed(str(run.id), "its process was killed")
        after = client.read_flow_run(run.id)
        assert after.state.type.value == "CRASHED" and "killed" in after.state.message
        assert not mark_crashed(str(run.id), "again")  # a final state is left alone
