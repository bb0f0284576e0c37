"""The propose step: the planner's evidence from the ledger (failed and pending cases), the budget,
and the model-scored strategies on the round checkpoints."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import CampaignConfig
from closedloop.planners.strategies import Needs, Strategy
from tests.lab.planner_ledgers import ledger_of, planner_config, validated


@pytest.fixture(scope="module")
def config() -> CampaignConfig:
    return planner_config()


def test_failed_cases_stay_out_of_the_gp_and_their_region_is_avoided(config):
    rows = validated(config)
    failed = {"source_x": 8.5, "source_y": 4.5, "inlet_speed": 1.4}  # where the error GP points
    pending = {"source_x": 8.8, "source_y": 1.0, "inlet_speed": 1.4}
    ledger = ledger_of(config, rows + [(1, "failed", failed, None), (1, "proposed", pending, None)])
    ev = steps.evidence_for(config, ledger)
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
    # the Sobol points on the design space's resolution grid, as every proposal
    assert cfg.design.space().as_tensor(proposal.parameters).tolist() == cfg.design.space().quantize(x0[8:]).tolist()
    full = ledger_of(cfg, validated(cfg, 10))
    with pytest.raises(ValueError, match="budget.max_cases = 10\\) is spent"):
        steps.propose_round(cfg, full, 1)


def test_ensemble_strategy_scores_candidates_with_round_checkpoints(config, tmp_path):
    """Snapshot ensemble in the campaign: round 0's checkpoint and the untrained model disagree
    (its closure head was moved), so candidates get finite, unequal scores and a batch comes out."""
    from closedloop.lab.store import CampaignStore

    cfg = config.with_overrides(**{"planner.strategy": "ensemble", "planner.candidates": 8, "budget.batch_size": 2})
    store = CampaignStore(tmp_path / "camp")
    ledger = ledger_of(cfg, validated(cfg))
    scenarios = [steps.scenario_for(cfg, json.loads(p)) for p in ledger["parameters"][:1]]
    with pytest.raises(ValueError, match="needs a trained round"):
        steps.ensemble_scorer(cfg, store, 1)(steps.feasible_sobol(cfg, 2, 100)[0])  # feasible: the refusal is why
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


# A strategy of this test module alone: one class, registered by its name, nothing else edited.
@dataclasses.dataclass(frozen=True)
class Corners(Strategy, name="test-corners", needs=Needs(errors=2)):
    """The design box's lowest corner first, then along its first axis (a deterministic toy)."""

    def propose(self, space, q, evidence):
        lower, upper = torch.tensor(space.lower, dtype=torch.float64), torch.tensor(space.upper, dtype=torch.float64)
        x = lower.repeat(q, 1)
        x[:, 0] = lower[0] + (upper[0] - lower[0]) * torch.arange(q, dtype=x.dtype) / (4 * q)
        return x


def test_a_strategy_registered_here_is_a_campaigns_planner(config, tmp_path):
    """Adding a strategy is one class: the config takes its name, the campaign's proposal step runs it
    and stores its cases in the ledger under its name."""
    from closedloop.lab.store import CampaignStore

    cfg = config.with_overrides(**{"planner.strategy": "test-corners"})
    store = CampaignStore(tmp_path / "camp")
    store.upsert(ledger_of(cfg, validated(cfg)).to_dict("records"))
    batch, proposal = steps.round_proposals(cfg, store, 1)
    assert proposal.strategy == "test-corners" and len(batch) == cfg.budget.batch_size
    space = cfg.design.space()
    assert space.as_tensor(batch)[:, 1:].eq(torch.tensor(space.lower[1:], dtype=torch.float64)).all()  # the toy's points
    assert set(store.read_ledger().cases.of_round(1)["strategy"]) == {"test-corners"}
