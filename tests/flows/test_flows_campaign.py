"""The campaign flow end to end under a Prefect test server."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from closedloop.simulators import interface
from closedloop.flows.campaign import campaign
from closedloop.lab import campaign as steps
from closedloop.lab.campaign import simulation
from closedloop.lab.store import CampaignStore
from tests.conftest import fast_config_text

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(directory.glob("*")) if p.is_file()}


def test_two_round_campaign_then_rerun_simulates_nothing(fast_config: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "camp"
    state = campaign(str(fast_config), str(out))
    assert state["status"] == "finished" and state["rounds_done"] == 2
    assert state["stop_reason"].startswith("round budget spent")

    ledger = pd.read_parquet(out / "ledger.parquet")
    assert len(ledger) == 8 and set(ledger["status"]) == {"done"}
    assert ledger.groupby("round").size().to_dict() == {0: 4, 1: 4}
    assert set(ledger.loc[ledger["round"] == 0, "strategy"]) == {"sobol"}
    assert set(ledger.loc[ledger["round"] == 1, "strategy"]) == {"variance"}
    # predict-before-train: round 0 judged by the untrained model, round 1 by round 0's model
    assert set(ledger.loc[ledger["round"] == 0, "validated_by"]) == {"initial"}
    assert set(ledger.loc[ledger["round"] == 1, "validated_by"]) == {"round_000"}
    assert ledger["rel_l2"].notna().all() and (ledger["rel_l2"] > 0).all()
    assert ledger["case_id"].is_unique and ledger["flow_run_id"].notna().all()
    assert {p.stem for p in (out / "cases").glob("*.parquet")} == set(ledger["case_id"])
    assert (out / "models" / "round_000.pt").is_file() and (out / "models" / "round_001.pt").is_file()
    assert (out / "figures" / "learning_curve.png").stat().st_size > 1000
    # where the time went, by round and step: every step inside the round's wall, the rest orchestration
    seconds = state["seconds_by_round"]
    assert list(seconds) == ["0", "1"]
    for row in seconds.values():
        assert min(row["simulation"], row["training"], row["planning"], row["validation"]) > 0
        assert max(row[s] for s in ("simulation", "training", "planning", "validation", "reporting")) <= row["wall"]
        assert row["orchestration"] >= 0 and row["wall"] <= sum(v for k, v in row.items() if k != "wall") + 1e-6
    # every proposal lies in the design box and no source sits inside the pillar
    from closedloop.lab.config import load_campaign_config
    config = load_campaign_config(fast_config)
    space = config.design.space()
    x = space.as_tensor([json.loads(p) for p in ledger["parameters"]])
    assert bool(space.contains(x).all())
    assert bool(steps.feasible_mask(config, x).all())

    # a re-run on the same directory simulates nothing and leaves every file untouched
    before = {sub: _mtimes(out / sub) for sub in ("cases", "models")}
    calls = []
    monkeypatch.setattr(interface, "reference_simulate", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    again = campaign(str(fast_config), str(out))
    assert calls == []
    assert again["rounds_done"] == 2 and again["cases_done"] == 8
    assert {sub: _mtimes(out / sub) for sub in ("cases", "models")} == before
    pd.testing.assert_frame_equal(pd.read_parquet(out / "ledger.parquet"), ledger)
    assert len(again["flow_run_ids"]) == 2
    assert again["seconds_by_round"] == seconds  # nothing ran again, no time added


def test_campaign_continues_and_records_failures(tmp_path: Path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text(fast_config_text(retries="1"))
    out = tmp_path / "camp"
    first = campaign(str(cfg), str(out), rounds=1)
    assert first["rounds_done"] == 1 and first["stop_reason"].startswith("round budget spent (1")
    round0 = _mtimes(out / "cases")

    real = interface.reference_simulate
    attempts: dict[str, int] = {}

    def doomed() -> str:
        # the first (by id) of round 1's proposals, which the ledger holds before any simulation
        ledger = CampaignStore(out).read_ledger()
        return sorted(ledger.loc[ledger["round"] == 1, "case_id"])[0]

    def flaky(scenario, **kwargs):
        attempts[scenario.case_id()] = attempts.get(scenario.case_id(), 0) + 1
        if scenario.case_id() == doomed():
            raise FloatingPointError("injected failure")
        return real(scenario, **kwargs)

    monkeypatch.setattr(interface, "reference_simulate", flaky)
    second = campaign(str(cfg), str(out), rounds=2)
    assert second["rounds_done"] == 2
    assert _mtimes(out / "cases").items() >= round0.items()  # round 0 files untouched
    ledger = pd.read_parquet(out / "ledger.parquet")
    r1 = ledger[ledger["round"] == 1]
    failed = r1[r1["status"] == "failed"]
    assert len(failed) == 1
    for _, row in failed.iterrows():
        assert "injected failure" in row["error"]
        assert attempts[row["case_id"]] == 2  # first try + one retry, then recorded as failed
        assert not (out / "cases" / f"{row['case_id']}.parquet").exists()
        assert pd.isna(row["rel_l2"])
    done = r1[r1["status"] == "done"]
    assert len(done) == 3 and done["rel_l2"].notna().all()
    # the failed case is not trained on: the round-1 checkpoint lists only done cases
    import torch
    ckpt = torch.load(out / "models" / "round_001.pt", weights_only=True)
    assert failed["case_id"].iloc[0] not in ckpt["trained_on"] and len(ckpt["trained_on"]) == 7
    # sync: trained in the flow's own thread, on the process's torch threads
    assert ckpt["training"]["torch_threads"] == torch.get_num_threads() and ckpt["training"]["device"] == "cpu"


def test_bad_config_fails_before_compute(tmp_path: Path):
    from closedloop.lab.config import ConfigError

    cfg = tmp_path / "bad.toml"
    cfg.write_text(fast_config_text(rounds="0"))
    with pytest.raises(ConfigError, match="budget.rounds"):
        campaign.fn(str(cfg), str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_other_campaign_in_same_directory_is_refused(fast_config: Path, tmp_path: Path):
    out = tmp_path / "camp"
    store = CampaignStore(out)
    from closedloop.lab.config import load_campaign_config

    config = load_campaign_config(fast_config)
    store.write_state(steps.campaign_state(config, store, status="finished"))
    other = tmp_path / "other.toml"
    other.write_text(fast_config_text(seed="8"))
    with pytest.raises(ValueError, match="another scenario, design or seed"):
        campaign.fn(str(other), str(out))
