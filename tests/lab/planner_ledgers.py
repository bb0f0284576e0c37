"""The planner inside the campaign (no simulation): config, evidence from the ledger, failures,
pending points, stopping rule and the round report that the flow publishes."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import CampaignConfig, load_campaign_config
from closedloop.lab.store import normalise_ledger

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.toml"
FAST = {"planner.num_restarts": 2, "planner.raw_samples": 32, "planner.mc_samples": 16, "planner.maxiter": 20,
        "planner.optimizer": "pool"}


@pytest.fixture(scope="module")
def config() -> CampaignConfig:
    return load_campaign_config(SMOKE).with_overrides(**FAST)


def ledger_of(config: CampaignConfig, rows: list[tuple[int, str, dict, float | None]]) -> pd.DataFrame:
    out = []
    for r, status, params, err in rows:
        out.append({"case_id": steps.scenario_for(config, params).case_id(), "round": r, "status": status,
                    "strategy": "sobol" if r == 0 else "error", "parameters": json.dumps(params, sort_keys=True),
                    "rel_l2": err, "log_rel_l2": None if err is None else float(torch.tensor(err).log())})
    return normalise_ledger(pd.DataFrame(out))


def validated(config: CampaignConfig, n: int = 8, seed: int = 0) -> list[tuple[int, str, dict, float | None]]:
    """n validated round-0 cases whose error grows towards the exhaust (x = 9)."""
    x, _ = steps.feasible_sobol(config, n, 0)
    rows = []
    for p in config.design.space().as_dicts(x):
        rows.append((0, "done", p, 0.05 * float(torch.exp(torch.tensor((p["source_x"] - 1.0) / 3.0)))))
    return rows


# ------------------------------------------------------------------------- config
def test_config_strategy_and_mixed_parameters(tmp_path):
    text = SMOKE.read_text().replace('strategy = "error"', 'strategy = "variance"')
    text = text.replace('[budget]', '''[[design.parameters]]
name = "release"
path = "source.start"
kind = "categorical"
choices = [0.0, 30.0, 60.0]

[[design.parameters]]
name = "exhaust_y"
path = "exhausts.0.center.0"
kind = "integer"
low = 1.0
high = 5.0

[budget]''')
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "room.toml").write_text((SMOKE.parent / "scenarios" / "room.toml").read_text())
    (tmp_path / "c.toml").write_text(text)
    cfg = load_campaign_config(tmp_path / "c.toml")
    space = cfg.design.space()
    assert cfg.planner.strategy == "variance"
    assert space.integer_mask.tolist() == [False, False, False, True, True]
    assert space.bounds()[:, 3].tolist() == [0.0, 2.0]  # categorical: the index of the choice
    sc = steps.scenario_for(cfg, {"source_x": 2.0, "source_y": 1.0, "inlet_speed": 0.5, "release": 2.0,
                                "exhaust_y": 3.0})
    assert sc.source.start == 60.0 and sc.exhausts[0].center[0] == 3.0
    x, _ = steps.feasible_sobol(cfg, 8, 0)
    assert space.contains(x).all() and torch.equal(x[:, 3:], x[:, 3:].round())


@pytest.mark.parametrize("override, needle", [
    ({"planner.strategy": "bayes"}, "planner.strategy"),
    ({"planner.acquisition": "ei"}, "planner.acquisition"),
    ({"budget.max_cases": 2}, "max_cases \\(2\\) is below initial_cases"),
    ({"budget.patience": 0}, "budget.patience"),
    ({"budget.max_error_target": -1.0}, "budget.max_error_target"),
    ({"design.parameters.0.kind": "categorical"}, "choices"),
    ({"design.parameters.0.kind": "integer", "design.parameters.0.low": 1.5}, "whole bounds"),
])
def test_bad_planner_config_names_the_field(config, override, needle):
    with pytest.raises(ValueError, match=needle):
        config.with_overrides(**override)


# ------------------------------------------------------------------ evidence and proposals
def test_failed_cases_stay_out_of_the_gp_and_their_region_is_avoided(config):
    rows = validated(config)
    failed = {"source_x": 8.5, "source_y": 4.5, "inlet_speed": 1.4}  # where the error GP points
    pending = {"source_x": 8.8, "source_y": 1.0, "inlet_speed": 1.4}
    ledger = ledger_of(config, rows + [(1, "failed", failed, None), (1, "proposed", pending, None)])
    ev = steps.evidence_for(config, ledger, round_index=2)
    assert len(ev.log_error) == len(rows) and torch.isfinite(ev.log_error).all()
    assert ev.failed.tolist() == [[8.5, 4.5, 1.4]] and ev.pending.tolist() == [[8.8, 1.0, 1.4]]
    proposal = steps.propose_round(config, ledger, 2)
    assert proposal.strategy == "error" and len(proposal.parameters) == config.budget.batch_size
    space = config.design.space()
    x = space.as_tensor(proposal.parameters)
    u = space.to_unit(x)
    assert torch.cdist(u, space.to_unit(ev.failed)).min() >= config.planner.failure_radius
    assert torch.cdist(u, space.to_unit(ev.pending)).min() > 1e-3
    assert steps.feasible_mask(config, x).all()
    # the error GP still aims at the high-error side (large x), away from the failure
    assert x[:, 0].mean() > 5.0


def test_budget_caps_the_batch_and_sobol_continues_without_repeats(config):
    cfg = config.with_overrides(**{"budget.max_cases": 10, "planner.strategy": "sobol"})
    ledger = ledger_of(cfg, validated(cfg))
    proposal = steps.propose_round(cfg, ledger, 1)
    assert proposal.strategy == "sobol" and len(proposal.parameters) == 2  # 10 − 8 left
    x0, _ = steps.feasible_sobol(cfg, 10, 0)
    assert cfg.design.space().as_tensor(proposal.parameters).tolist() == x0[8:].tolist()
    full = ledger_of(cfg, validated(cfg, 10))
    with pytest.raises(ValueError, match="budget.max_cases = 10\\) is spent"):
        steps.propose_round(cfg, full, 1)


# ------------------------------------------------------------------------- stopping
def test_stop_reasons_from_the_ledger(config):
    rows = validated(config)
    cfg = config.with_overrides(**{"budget.rounds": 10, "budget.error_target": None})
    ledger = ledger_of(cfg, rows)
    assert steps.stop_reason(cfg, ledger, 0) is None
    assert steps.stop_reason(cfg.with_overrides(**{"budget.max_cases": 8}), ledger, 0).startswith(
        "simulation budget spent (8 of 8")
    # errors around 0.05–0.7 over the space: a target of 0.01 is far, one of 10 is met
    assert steps.stop_reason(cfg.with_overrides(**{"budget.max_error_target": 0.01}), ledger, 0) is None
    assert steps.stop_reason(cfg.with_overrides(**{"budget.max_error_target": 10.0}), ledger, 0).startswith(
        "accuracy target reached")
    later = [(r, "done", p, 0.3) for r, (_, _, p, _) in zip((1, 1, 2, 2, 3, 3), validated(config, 14)[8:])]
    stale = ledger_of(cfg, rows + later)  # round means 0.2, 0.3, 0.3, 0.3: no improvement after round 0
    assert steps.stop_reason(cfg.with_overrides(**{"budget.patience": 3}), stale, 3).startswith(
        "no improvement for 3 rounds")
    assert steps.stop_reason(cfg.with_overrides(**{"budget.patience": 4}), stale, 3) is None


def test_round_report_shows_strategy_proposals_stop_reason_and_error_map(config):
    ledger = ledger_of(config, validated(config))
    lines = "\n".join(steps.planner_report(config, ledger, 0))
    assert "Strategy: **sobol**" in lines and "configured `error`" in lines
    assert lines.count("| done |") == 8
    assert "Stopping rule: continue" in lines
    stop = "\n".join(steps.planner_report(config.with_overrides(**{"budget.max_cases": 8}), ledger, 0))
    assert "**stop** — simulation budget spent" in stop
    cut = steps.predicted_error_slice(config, ledger, n=12)
    assert cut.names == ("source_x", "source_y") and cut.error.shape == (12, 12)
    assert set(cut.fixed) == {"inlet_speed"}
    # the predicted error grows with x like the data, and the pillar's cells are masked
    finite = torch.nan_to_num(cut.error, nan=0.0)
    assert finite[:, -1].max() > finite[:, 0].max()
    assert torch.isnan(cut.error).any()


def test_ensemble_strategy_scores_candidates_with_round_checkpoints(config, tmp_path):
    """Snapshot ensemble in the campaign: round 0's checkpoint and the untrained model disagree
    (its closure head was moved), so candidates get finite, unequal scores and a batch comes out."""
    from closedloop.lab.store import CampaignStore

    cfg = config.with_overrides(**{"planner.strategy": "ensemble", "planner.candidates": 8, "budget.batch_size": 2})
    store = CampaignStore(tmp_path / "camp")
    ledger = ledger_of(cfg, validated(cfg))
    scenarios = [steps.scenario_for(cfg, json.loads(p)) for p in ledger["parameters"][:1]]
    with pytest.raises(ValueError, match="needs a trained round"):
        steps.ensemble_scorer(cfg, store, 1)(cfg.design.space().from_unit(torch.rand(2, 3, dtype=torch.float64)))
    model = steps.initial_model(cfg, scenarios)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    store.save_checkpoint(steps.model_name(0), {"spec": model.spec.to_dict(), "state_dict": model.state_dict()})
    x, _ = steps.feasible_sobol(cfg, 16, 100)
    scores = steps.ensemble_scorer(cfg, store, 1)(x)
    assert scores.shape == (16,) and torch.isfinite(scores).all() and scores.std() > 0
    proposal = steps.propose_round(cfg, ledger, 1, store)
    assert proposal.strategy == "ensemble" and len(proposal.parameters) == 2


def test_information_strategy_uses_the_latest_checkpoint(config, tmp_path):
    """'information' in the campaign: before any checkpoint it refuses, saying why; with round 0's
    model it gives each scenario a symmetric PSD information matrix of the configured size, scenarios
    differ, and a feasible batch of the configured size comes out, none a case already run."""
    from closedloop.lab.store import CampaignStore

    cfg = config.with_overrides(**{"planner.strategy": "information", "planner.candidates": 8,
                                   "planner.information_directions": 3, "budget.batch_size": 2})
    store = CampaignStore(tmp_path / "camp")
    ledger = ledger_of(cfg, validated(cfg))
    scenarios = [steps.scenario_for(cfg, json.loads(p)) for p in ledger["parameters"][:1]]
    x, _ = steps.feasible_sobol(cfg, 4, 100)
    with pytest.raises(ValueError, match="strategy 'information' needs a trained round"):
        steps.information_scorer(cfg, store, 1)(x)
    model = steps.initial_model(cfg, scenarios)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    store.save_checkpoint(steps.model_name(0), {"spec": model.spec.to_dict(), "state_dict": model.state_dict()})
    info = steps.information_scorer(cfg, store, 1)(x)
    assert info.shape == (4, 3, 3) and torch.allclose(info, info.transpose(1, 2))
    assert torch.linalg.eigvalsh(info).min() > -1e-9 and (info[0] - info[1]).abs().max() > 0
    proposal = steps.propose_round(cfg, ledger, 1, store)
    assert proposal.strategy == "information" and len(proposal.parameters) == 2
    done = set(ledger["parameters"])
    assert not any(json.dumps(p, sort_keys=True) in done for p in proposal.parameters)
    assert steps.feasible_mask(cfg, cfg.design.space().as_tensor(proposal.parameters)).all()
