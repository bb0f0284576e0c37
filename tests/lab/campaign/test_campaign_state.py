"""The campaign's state: where its directory is, which rounds are complete and published, and the
summary in campaign.json (identity, counts, every flow run and repair so far)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import CampaignStore
from tests.lab.conftest import SMOKE_TOML


@pytest.fixture(scope="module")
def config():
    return load_campaign_config(SMOKE_TOML)


def test_campaign_directory_defaults_to_runs_name_and_refuses_a_file(config, tmp_path: Path):
    assert steps.campaign_directory(config, None) == str(Path("runs") / "smoke")
    new = tmp_path / "not" / "yet" / "there"
    assert steps.campaign_directory(config, str(new)) == str(new) and not new.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for path in (blocker, blocker / "below"):
        with pytest.raises(ValueError, match=rf"^campaign_dir: {path} cannot be a campaign directory: {blocker} is a file"):
            steps.campaign_directory(config, str(path))


def test_a_round_is_complete_once_indexed_and_published_once_reported(tmp_path: Path):
    store = CampaignStore(tmp_path / "camp")
    assert steps.model_name(3) == "round_003" and steps.report_path(store, 3) == store.figures_dir / "round_003.md"
    assert not steps.round_complete(store, 0)
    store.model_path("round_000").write_bytes(b"renamed into place, checksum not yet indexed")
    assert not steps.round_complete(store, 0)
    store.save_checkpoint("round_000", {"w": torch.zeros(2)})
    assert steps.round_complete(store, 0) and not steps.round_published(store, 0)
    steps.report_path(store, 0).write_text("# round 0\n")
    assert steps.round_published(store, 0)


def test_state_counts_the_ledger_and_keeps_every_run_and_repair(config, tmp_path: Path):
    store = CampaignStore(tmp_path / "camp")
    row = {"strategy": "sobol", "parameters": "{}"}
    store.upsert([{**row, "case_id": "a", "round": 0, "status": "done", "rel_l2": 0.4},
                  {**row, "case_id": "b", "round": 1, "status": "done", "rel_l2": 0.1},
                  {**row, "case_id": "c", "round": 1, "status": "done", "rel_l2": 0.3},
                  {**row, "case_id": "d", "round": 1, "status": "failed"}])
    store.save_checkpoint("round_000", {"w": torch.zeros(2)})
    store.write_state(steps.campaign_state(config, store, status="running", run_id="run-1", repairs=["x.parquet"]))
    state = steps.campaign_state(config, store, status="finished", run_id="run-2", reason="round budget spent")
    assert (state["status"], state["stop_reason"], state["flow_run_ids"]) == ("finished", "round budget spent",
                                                                              ["run-1", "run-2"])
    assert (state["cases_done"], state["cases_failed"], state["rounds_done"]) == (3, 1, 1)
    assert state["last_round_mean_rel_l2"] == pytest.approx(0.2)
    assert state["latest_model"] == str(store.model_path("round_000")) and state["repairs"] == ["x.parquet"]
    assert state["identity"] == config.model_dump(mode="json", include={"scenario", "design", "seed"})
    store.write_state(state)
    steps.check_same_campaign(store, config)
    with pytest.raises(ValueError, match="holds a campaign with another scenario, design or seed"):
        steps.check_same_campaign(store, config.with_overrides(seed=8))
