"""`closedloop campaign run` and `campaign status`: a bad config fails before compute; status shows the ledger."""
from __future__ import annotations

from pathlib import Path

from closedloop.cli import app
from closedloop.lab.store import CampaignStore
from tests.cli.cli_runner import flat, runner
from tests.lab.steering_campaign import make_campaign


def test_campaign_run_rejects_bad_config(tmp_path: Path):
    from tests.conftest import fast_config_text

    cfg = tmp_path / "bad.toml"
    cfg.write_text(fast_config_text(batch_size="1"))
    res = runner.invoke(app, ["campaign", "run", str(cfg), "--dir", str(tmp_path / "c")])
    assert res.exit_code == 2 and "budget.batch_size" in flat(res)
    assert not (tmp_path / "c").exists()


def test_campaign_status_shows_the_ledger_and_the_state(tmp_path: Path):
    camp = make_campaign(tmp_path)
    res = runner.invoke(app, ["campaign", "status", str(camp)])
    assert res.exit_code == 0, res.output
    assert "status: finished; rounds 1/2; cases done 6, failed 0" in flat(res)
    assert all(case_id in res.output for case_id in CampaignStore(camp).read_ledger()["case_id"])


def test_campaign_run_passes_the_mode_and_refuses_an_unknown_one(tmp_path: Path, monkeypatch):
    import closedloop.flows.campaign as flows
    from tests.conftest import fast_config_text

    cfg = tmp_path / "fast.toml"
    cfg.write_text(fast_config_text())
    asked = {}

    def fake(**kwargs):
        asked.update(kwargs)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(flows, "campaign", fake)
    res = runner.invoke(app, ["campaign", "run", str(cfg), "--dir", str(tmp_path / "c"), "--mode", "async"])
    assert res.exit_code == 2 and "stopped by the test" in flat(res) and asked["mode"] == "async"
    res = runner.invoke(app, ["campaign", "run", str(cfg), "--dir", str(tmp_path / "c"), "--mode", "fast"])
    assert res.exit_code == 2 and "--mode" in flat(res) and "is not one of 'sync'" in flat(res)
    # an override the flow would refuse is refused here, with the flow's words, before a run starts
    asked.clear()
    res = runner.invoke(app, ["campaign", "run", str(cfg), "--dir", str(tmp_path / "c"), "--rounds", "5000"])
    assert res.exit_code == 2 and "budget.rounds" in flat(res) and "rounds=5000" in flat(res) and not asked


def test_a_bad_mode_from_a_deployment_names_the_field():
    import pytest

    from closedloop.lab.config import ConfigError, load_with_overrides
    from tests.conftest import SMOKE

    assert load_with_overrides(SMOKE, **{"campaign.mode": "async"}).campaign.mode == "async"
    with pytest.raises(ConfigError, match=r"campaign\.mode"):
        load_with_overrides(SMOKE, **{"campaign.mode": "fast"})


def test_campaign_status_shows_each_rounds_training_and_flags_one_that_did_not_learn(tmp_path: Path):
    from closedloop.lab import campaign as steps
    from closedloop.lab.campaign.report import training_lines
    from closedloop.surrogates.training_report import TrainReport

    camp = make_campaign(tmp_path)
    store = CampaignStore(camp)
    stuck = TrainReport(losses=[0.31, 0.29], initial_loss=0.25, best_loss=0.25, best_epoch=-1, seconds=1.5)
    checkpoint = store.load_checkpoint(steps.model_name(0))
    store.save_checkpoint(steps.model_name(0), {**checkpoint, "trained_on": ["a", "b"], "losses": stuck.losses,
                                                "training": stuck.summary()})
    res = runner.invoke(app, ["campaign", "status", str(camp)])
    assert res.exit_code == 0, res.output
    text = flat(res)
    assert "training by round" in text and "kept start" in text and "0.25" in text and "0.29" in text
    assert "round 0: training did not learn: no epoch of 2 improved on the starting loss 0.25" in text
    lines = "\n".join(training_lines(store, 0))
    assert "Training on 2 cases: loss 0.25 → best 0.25 (best epoch none (starting weights kept)" in lines
    assert "**Warning: training did not learn:** no epoch of 2 improved" in lines


def test_campaign_status_shows_where_the_time_went(tmp_path: Path):
    camp = make_campaign(tmp_path)
    store = CampaignStore(camp)
    state = store.read_state()
    state["seconds_by_round"] = {"0": {"wall": 20.0, "simulation": 8.0, "validation": 1.0, "training": 9.0,
                                       "planning": 0.5, "reporting": 0.5, "orchestration": 1.0},
                                 "1": {"wall": 10.0, "simulation": 4.0, "training": 5.0, "orchestration": 1.0}}
    store.write_state(state)
    res = runner.invoke(app, ["campaign", "status", str(camp)])
    assert res.exit_code == 0, res.output
    text = " ".join(flat(res).replace("│", " ").split())
    assert "wall seconds by round and step" in text
    assert "0 20.0 8.0 1.0 9.0 0.5 0.5 1.0" in text and "all 30.0 12.0 1.0 14.0 0.5 0.5 2.0" in text
