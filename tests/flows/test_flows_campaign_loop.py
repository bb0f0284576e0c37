"""The asynchronous campaign end to end under a Prefect test server: the budget is finished, every
case is predicted before any training on it, each training takes only validated cases, the last one
takes them all, and the progress artifact reaches 100 %."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from closedloop.flows.campaign import campaign
from closedloop.lab.store import CampaignStore
from closedloop.simulators.concurrency import threads_beside
from closedloop.tasks import progress
from tests.flows.asynclab import tiny_async_config

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("async")
    config = tiny_async_config(tmp)
    events: list[tuple[str, dict, list, dict]] = []
    real = progress.emit_event
    mp = pytest.MonkeyPatch()

    def record(**kw):
        events.append((kw["event"], kw["resource"], kw["related"] or [], kw["payload"]))
        return real(**kw)

    mp.setattr(progress, "emit_event", record)
    try:
        state = campaign(str(config), str(tmp / "camp"))
    finally:
        mp.undo()
    return config, tmp / "camp", state, events


def checkpoints(directory: Path) -> dict[int, dict]:
    return {int(p.stem.split("_")[1]): torch.load(p, weights_only=True) for p in sorted((directory / "models").glob("*.pt"))}


def test_the_budget_is_finished_and_every_case_predicted_before_training(finished):
    _, directory, state, _ = finished
    assert state["status"] == "finished" and state["stop_reason"] == "simulation budget spent (7 of 7 cases)"
    ledger = pd.read_parquet(directory / "ledger.parquet")
    assert len(ledger) == 7 and ledger["case_id"].is_unique and set(ledger["status"]) == {"done"}
    assert ledger["rel_l2"].notna().all() and ledger["flow_run_id"].notna().all()
    models = checkpoints(directory)
    assert sorted(models) == list(range(len(models))) and 2 <= len(models) <= 3
    for _, row in ledger.iterrows():
        # round k is what checkpoint k − 1 predicted; that checkpoint never saw the case
        r = int(row["round"])
        assert row["validated_by"] == ("initial" if r == 0 else f"round_{r - 1:03d}")
        assert all(row["case_id"] not in models[k]["trained_on"] for k in range(r))
    for k, ckpt in models.items():  # each training: validated cases only, by then-existing models
        trained = ledger[ledger["case_id"].isin(ckpt["trained_on"])]
        assert (trained["round"] <= k).all()
        if k:
            assert set(models[k - 1]["trained_on"]) <= set(ckpt["trained_on"])  # warm start, more cases
    assert set(models[max(models)]["trained_on"]) == set(ledger["case_id"])  # the last takes every case
    # beside the 2 simulation threads the trainer's torch keeps to the cores they leave (one OpenMP team
    # per thread); the last training, on every case, runs once none runs, in the flow's thread on its count
    threads = [models[k]["training"]["torch_threads"] for k in sorted(models)]
    assert set(threads[:-1]) == {threads_beside(2)} and threads[-1] == torch.get_num_threads()
    assert state["rounds_done"] == len(models)
    # time by round: a round opens when the previous checkpoint is written; each training in its round
    seconds = state["seconds_by_round"]
    assert list(seconds) == [str(k) for k in models] and all(row["training"] > 0 for row in seconds.values())
    assert sum(row["simulation"] for row in seconds.values()) > 0
    assert all(row[s] <= row["wall"] + 1e-6 for row in seconds.values() for s in row)
    assert all((directory / "figures" / f"round_{k:03d}.md").is_file() for k in models)
    assert set(ledger.loc[ledger["round"] == 0, "strategy"]) >= {"sobol"}
    assert "variance" in set(ledger["strategy"])  # replacements by the planner once two cases are known


def test_progress_artifact_and_events(finished):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    _, directory, state, events = finished
    store = CampaignStore(directory)
    name = json.loads((directory / "campaign.json").read_text())["name"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[
            store.artifact_key(name, "progress"), store.artifact_key(name, "summary")])))
    by_key = {a.key: a for a in sorted(found, key=lambda a: a.created)}  # the latest version of each
    assert len([a for a in found if a.key.endswith("summary")]) >= 7  # a new version as each case finished
    assert by_key[store.artifact_key(name, "progress")].data == pytest.approx(100.0)
    assert "| cases done / budget | 7 / 7 (100 %) |" in by_key[store.artifact_key(name, "summary")].data
    kinds = [e[0] for e in events]
    assert kinds.count("closedloop.case.done") == 7
    assert kinds.count("closedloop.checkpoint.written") == state["rounds_done"]
    assert kinds[-1] == "closedloop.campaign.stopped" and events[-1][3]["reason"] == state["stop_reason"]
    resource = events[0][1]
    assert resource["prefect.resource.id"] == f"closedloop.campaign.{store.artifact_key(name)}"
    assert resource["closedloop.campaign-dir"] == str(directory.resolve())
    done = {r["prefect.resource.id"] for e in events if e[0] == "closedloop.case.done" for r in e[2]}
    ledger = pd.read_parquet(directory / "ledger.parquet")
    assert done == {f"closedloop.case.{c}" for c in ledger["case_id"]}


def test_a_rerun_of_a_finished_campaign_simulates_nothing(finished, monkeypatch):
    from closedloop.lab.campaign import simulation

    config, directory, state, _ = finished
    before = pd.read_parquet(directory / "ledger.parquet")
    monkeypatch.setattr(simulation, "write_case", lambda *a, **k: pytest.fail("simulated again"))
    again = campaign(str(config), str(directory))
    assert again["stop_reason"] == state["stop_reason"] and again["rounds_done"] == state["rounds_done"]
    pd.testing.assert_frame_equal(pd.read_parquet(directory / "ledger.parquet"), before)
