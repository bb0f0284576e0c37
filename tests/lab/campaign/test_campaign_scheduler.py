"""The asynchronous scheduler's decisions, on ledgers (no simulation): the pool, what is pending, when
to retrain, when to stop, and the next proposal with the running cases pending."""
from __future__ import annotations

import pytest
import torch

from closedloop.lab.campaign import scheduler
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from tests.lab.planner_ledgers import ledger_of, planner_config, validated


@pytest.fixture(scope="module")
def config() -> CampaignConfig:
    return planner_config().with_overrides(**{"campaign.mode": "async", "budget.rounds": 5,
                                              "budget.error_target": None})


def test_pool_is_the_workers_plus_the_queue(config):
    dask = config.with_overrides(**{"simulation.runner": "dask", "simulation.dask_workers": 3, "campaign.queued": 2})
    assert scheduler.simulation_workers(dask) == 3 and scheduler.pool_size(dask) == 5
    threads = config.with_overrides(**{"simulation.max_concurrent": 4, "campaign.queued": 0})
    assert scheduler.simulation_workers(threads) == 4 and scheduler.pool_size(threads) == 4


def test_the_mode_is_checked_by_name(config):
    with pytest.raises(ValueError, match="campaign.mode"):
        CampaignConfig.model_validate({**config.model_dump(mode="json"), "campaign": {"mode": "asap"}})
    # how steps are scheduled does not change what a case or a training computes
    assert config.config_hash() == config.with_overrides(**{"campaign.mode": "sync", "campaign.queued": 3}).config_hash()


def test_proposed_running_and_trainable_cases(config):
    rows = validated(config, 6)
    rows[4] = (1, "proposed", rows[4][2], None)
    rows[5] = (1, "done", rows[5][2], None)  # finished, not yet validated
    ledger = ledger_of(config, rows)
    ids = ledger["case_id"].tolist()
    assert [c["case_id"] for c in scheduler.proposed(ledger)] == [ids[4]]
    assert scheduler.proposed(ledger)[0]["params"] == rows[4][2]
    assert scheduler.unvalidated(ledger) == [ids[5]]


def test_when_a_training_is_due(config):
    ledger = ledger_of(config, validated(config, 6))
    ids = set(ledger["case_id"])
    # round 0 waits for the initial design (4 validated cases in the smoke config)
    assert scheduler.retrain_due(config, ledger.iloc[:3], set(), 0, closing=False) is False
    assert scheduler.retrain_due(config, ledger.iloc[:3], set(), 0, closing=True) is True
    assert scheduler.retrain_due(config, ledger, set(), 0, closing=False) is True
    # later rounds: as soon as a validated case is new to the trainer
    assert scheduler.retrain_due(config, ledger, ids, 1, closing=False) is False
    assert scheduler.retrain_due(config, ledger, ids - {ledger["case_id"].iloc[0]}, 1, closing=False) is True
    # at most rounds − 1 beside the simulations; the last waits for them to end
    assert scheduler.retrain_due(config, ledger, set(), 4, closing=False) is False
    assert scheduler.retrain_due(config, ledger, set(), 4, closing=True) is True
    assert scheduler.retrain_due(config, ledger, set(), 5, closing=True) is False


def test_the_next_case_keeps_clear_of_the_running_ones(config, tmp_path):
    """The replacement is proposed with every proposed case as pending: it is not any of them, and
    a different running set gives a different proposal."""
    store = CampaignStore(tmp_path / "camp")
    rows = validated(config, 8)
    running = [(1, "proposed", p, None) for _, _, p, _ in validated(config, 10)[8:]]
    alone = scheduler.propose_next(config, store, ledger_of(config, rows), 1)
    beside = scheduler.propose_next(config, store, ledger_of(config, rows + running), 1)
    assert alone.strategy == beside.strategy == "error" and len(beside.parameters) == 1
    space = config.design.space()
    got = space.as_tensor(beside.parameters)
    pending = space.as_tensor([p for _, _, p, _ in running])
    assert torch.cdist(space.to_unit(got), space.to_unit(pending)).min() > 1e-3
    assert alone.parameters != beside.parameters
    # the same ledger proposes the same point (seeded by its position in the ledger)
    assert scheduler.propose_next(config, store, ledger_of(config, rows + running), 1).parameters == beside.parameters


def test_the_first_proposal_is_the_initial_design_within_the_budget(config, tmp_path):
    store = CampaignStore(tmp_path / "camp")
    empty = ledger_of(config, [])
    first = scheduler.propose_next(config, store, empty, 1)
    assert first.round == 0 and first.strategy == "sobol" and len(first.parameters) == config.budget.initial_cases
    with pytest.raises(ValueError, match="budget.max_cases"):
        scheduler.propose_next(config.with_overrides(**{"budget.max_cases": 8}), store,
                               ledger_of(config, validated(config, 8)), 1)


def test_sync_is_the_same_loop_with_a_batched_cadence(config):
    sync = config.with_overrides(**{"campaign.mode": "sync", "simulation.max_concurrent": 3, "campaign.queued": 2})
    assert scheduler.cadence(sync) == scheduler.Cadence(batched=True, in_flight=3)  # W at once, no queue
    assert scheduler.cadence(sync.with_overrides(**{"campaign.mode": "async"})) == \
        scheduler.Cadence(batched=False, in_flight=5)
    rows = validated(config, 6)
    rows[4] = (1, "done", rows[4][2], 0.1)
    rows[5] = (1, "proposed", rows[5][2], None)  # round 1's batch is not in yet
    ledger = ledger_of(sync, rows)
    ids = set(ledger["case_id"])
    assert scheduler.batch_in(ledger, 0) and not scheduler.batch_in(ledger, 1) and not scheduler.batch_in(ledger, 2)
    # a sync round trains once its whole batch has ended, never beside it, whatever is new to the trainer
    assert scheduler.retrain_due(sync, ledger, set(), 1, closing=False) is False
    ended = ledger_of(sync, rows[:5] + [(1, "failed", rows[5][2], None)])
    assert scheduler.retrain_due(sync, ended, ids, 1, closing=False) is True
    assert scheduler.retrain_due(sync, ended, set(), 2, closing=True) is False  # round 2 has no batch yet
