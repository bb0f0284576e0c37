"""campaign.json and `campaign status` tell the truth: finished, failed, cancelled or crashed."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from prefect import get_client
from prefect.states import Running
from typer.testing import CliRunner

from closedloop.simulators import interface
from closedloop.cli import app
from closedloop.flows.campaign import campaign
from closedloop.lab.campaign import learn, simulation
from closedloop.lab.campaign import scheduler
from closedloop.simulators.budget import ScenarioTooLarge
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


def test_a_failed_run_says_failed_and_permanent_errors_are_not_retried(tmp_path: Path, monkeypatch):
    """Round 0: one case fails for good (not retried), one transiently (retried), then training
    breaks: the ledger says how each case failed, campaign.json that the run failed and why."""
    from closedloop.lab import campaign as steps
    from closedloop.lab.config import load_campaign_config
    from closedloop.lab.store import empty_ledger

    cfg = tmp_path / "c.toml"
    cfg.write_text(fast_config_text(retries="2") + "retry_delay_seconds = 0.1\n")
    config = load_campaign_config(cfg)
    ids = sorted(steps.scenario_for(config, p).case_id()
                 for p in steps.propose_round(config, empty_ledger(), 0).parameters)
    attempts: dict[str, int] = {}
    real = interface.reference_simulate

    def some_fail(scenario, **kwargs):
        cid = scenario.case_id()
        attempts[cid] = attempts.get(cid, 0) + 1
        if cid == ids[0]:
            raise ScenarioTooLarge("room.cell_size: 9 cells need 9 GiB")
        if cid == ids[1]:
            raise RuntimeError("solver diverged")
        return real(scenario, **kwargs)

    def broken(*args, **kwargs):
        raise RuntimeError("training diverged")

    monkeypatch.setattr(interface, "reference_simulate", some_fail)
    monkeypatch.setattr(learn, "train_stages", broken)
    with pytest.raises(RuntimeError, match="training diverged"):
        campaign(str(cfg), str(tmp_path / "camp"), rounds=1)
    ledger = pd.read_parquet(tmp_path / "camp" / "ledger.parquet").set_index("case_id")
    assert list(ledger.index[ledger["status"] == "failed"].sort_values()) == ids[:2]
    assert ledger.loc[ids[0], "error"] == "ScenarioTooLarge: room.cell_size: 9 cells need 9 GiB (permanent: not retried)"
    assert attempts[ids[0]] == 1
    assert ledger.loc[ids[1], "error"] == "RuntimeError: solver diverged (failed 3 attempts)"
    assert attempts[ids[1]] == 3
    state = json.loads((tmp_path / "camp" / "campaign.json").read_text())
    assert state["status"] == "failed" and state["stop_reason"] == "RuntimeError: training diverged"
    assert state["history"][-1]["status"] == "failed"
    assert state["cases_done"] == 2 and state["cases_failed"] == 2
    assert "status: failed;" in status_line(tmp_path / "camp") and "failed 2" in status_line(tmp_path / "camp")


def test_a_cancelled_run_says_cancelled(config: Path, tmp_path: Path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scheduler, "propose", interrupted)  # the loop's proposal step
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
    second = campaign(str(config), str(out), rounds=1)  # resumes: nothing left to simulate or train
    assert second["status"] == "finished" and second["rounds_done"] == 1
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
