"""The asynchronous campaign's decisions, as plain functions (flows/campaign_async.py runs them).

A pool of ``W`` simulations is kept running (:func:`simulation_workers`) with ``queued`` more
waiting (``[campaign] queued``), so a worker that frees starts its next case at once. Whenever a
case finishes it is recorded, validated by the newest checkpoint (predicted before any training on
it: a training takes only cases validated before it starts), and the planner proposes its
replacement with every case still proposed (running or waiting) as pending (BoTorch ``X_pending``).
Retraining runs beside the simulations, one at a time, warm-started, on every validated case when
it starts.

**Rounds in async mode.** Round ``k`` is the ``k``-th retraining and the cases checkpoint ``k − 1``
predicted (round 0: the initial model): a case's ``round`` is written when it is proposed (the
number of checkpoints then) and written again when it is validated (the number of checkpoints
then, ``validated_by`` names the model), so ``round_NNN.md`` reports, as in sync mode, the cases
round ``k − 1``'s model predicted, and round ``k`` is closed when checkpoint ``k`` is written. Round
0 trains once ``budget.initial_cases`` cases are validated (the full schedule); later rounds as soon
as the trainer is free and a validated case is new to it (``warm_start_epochs``).

**Stopping**: the rules of lab/campaign/stop.py, the same as sync mode's, evaluated as cases arrive
(on the open round) and as trainings end (on the round just closed). ``budget.rounds`` counts
trainings: at most ``rounds − 1`` run beside the simulations. Once a reason holds nothing more is
proposed; the cases in flight finish (recorded and validated), then a last training on every case
closes the campaign.

**Crashes.** The ledger is the one record: proposals are stored before they are submitted, a
finished case is ``done`` before it is validated, so a rerun after ``kill -9`` submits every case
still ``proposed`` again (a case whose file was written is reused, not simulated again: no
duplicate ids, no lost done case, a case in flight re-run once), validates done cases that lack an
error, and finds the same stop reason from the ledger and the checkpoints.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from closedloop.lab.campaign.learn import training_set
from closedloop.lab.campaign.propose import Proposal, propose, proposal_rows
from closedloop.lab.campaign.state import model_name
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.simulators.concurrency import concurrent_limit


def simulation_workers(config: CampaignConfig) -> int:
    """``W``: the local Dask cluster's (or the scheduler's) ``dask_workers``, else the flow's thread limit."""
    sim = config.simulation
    return sim.dask_workers if sim.runner == "dask" else concurrent_limit(sim.max_concurrent)


def pool_size(config: CampaignConfig) -> int:
    """Cases submitted at once: the ``W`` running plus ``queued`` waiting."""
    return simulation_workers(config) + config.campaign.queued


def newest_round(store: CampaignStore, rounds: int) -> int:
    """The newest complete round (its checkpoint written and indexed), −1 before the first."""
    index = store.read_model_index()
    done = [r for r in range(rounds) if model_name(r) in index and store.model_path(model_name(r)).exists()]
    return done[-1] if done else -1


def proposed(ledger: pd.DataFrame) -> list[dict[str, Any]]:
    """The cases still ``proposed`` (running, waiting, or in flight when a run died), in ledger order:
    ``[{"case_id", "params"}]``."""
    rows = ledger.cases.proposed()
    return [{"case_id": cid, "params": p} for cid, p in zip(rows["case_id"], rows.cases.params())]


def unvalidated(ledger: pd.DataFrame) -> list[str]:
    """Done cases without a validation error (the run stopped between recording and validating)."""
    return ledger.cases.unvalidated()["case_id"].tolist()


def propose_next(config: CampaignConfig, store: CampaignStore, ledger: pd.DataFrame, n: int) -> Proposal:
    """The next ``n`` cases of the newest open round (``propose.propose``, the step sync mode uses),
    every proposed case pending; seeded by the proposal's position in the ledger, so a rerun that
    finds the same ledger proposes the same points."""
    return propose(config, ledger, open_round(config, store), n, store, seed_index=len(ledger))


def store_proposal(config: CampaignConfig, store: CampaignStore, proposal: Proposal,
                   flow_run_id: str | None) -> list[dict[str, Any]]:
    """Write the proposal's rows (status ``proposed``) to the ledger before anything is submitted."""
    rows = proposal_rows(config, proposal, flow_run_id)
    store.upsert(rows)
    return rows


def open_round(config: CampaignConfig, store: CampaignStore) -> int:
    """The round the newest checkpoint opens (0 before the first): the one a case arriving now is
    validated in, by that checkpoint (``learn.validate_cases``)."""
    return newest_round(store, config.budget.rounds) + 1


def retrain_due(config: CampaignConfig, ledger: pd.DataFrame, trained_on: set[str], rounds_done: int,
                closing: bool) -> bool:
    """Whether the free trainer should start round ``rounds_done`` now: a validated case it has not
    trained on, round 0 only with ``initial_cases`` validated, and (unless ``closing``: nothing more
    will arrive) at most ``rounds − 1`` rounds beside the simulations."""
    cases = training_set(ledger)
    if rounds_done >= config.budget.rounds or not set(cases) - trained_on:
        return False
    if closing:
        return True
    if rounds_done >= config.budget.rounds - 1:
        return False
    return rounds_done > 0 or len(cases) >= config.budget.initial_cases


def trained_on(store: CampaignStore, round_index: int) -> set[str]:
    """The cases checkpoint ``round_index`` was trained on (none for −1)."""
    if round_index < 0:
        return set()
    return set(store.load_checkpoint(model_name(round_index)).get("trained_on", []))
