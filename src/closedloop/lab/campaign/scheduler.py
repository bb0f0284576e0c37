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

**Stopping**, evaluated as cases arrive and as rounds close (:func:`stop_reason`): the simulation
budget (every proposed, done or failed case counts), the error target on the mean of the newest
round's cases (at least ``batch_size`` of them), and, when a round closes, the error GP's expected
maximum and patience over round means, as in sync mode. ``budget.rounds`` counts trainings: at most
``rounds − 1`` run beside the simulations. Once a reason holds nothing more is proposed; the cases
in flight finish (recorded and validated), then a last training on every case closes the campaign.

**Crashes.** The ledger is the one record: proposals are stored before they are submitted, a
finished case is ``done`` before it is validated, so a rerun after ``kill -9`` submits every case
still ``proposed`` again (a case whose file was written is reused, not simulated again: no
duplicate ids, no lost done case, a case in flight re-run once), validates done cases that lack an
error, and finds the same stop reason from the ledger and the checkpoints.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
import torch

from closedloop.lab import faults
from closedloop.lab.campaign.design import feasible_mask, feasible_sobol, proposed_points
from closedloop.lab.campaign.learn import validate_round
from closedloop.lab.campaign.propose import (
    SCORERS,
    Proposal,
    observed_errors,
    points_with_status,
    proposal_rows,
    strategy_for,
)
from closedloop.lab.campaign.state import model_name
from closedloop.lab.campaign.stop import expected_max_error, round_mean_errors
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.lab.timing import timed
from closedloop.planners.stopping import rounds_without_improvement
from closedloop.planners.strategies import Evidence
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
    rows = ledger[ledger["status"] == "proposed"]
    return [{"case_id": cid, "params": json.loads(p)} for cid, p in zip(rows["case_id"], rows["parameters"])]


def unvalidated(ledger: pd.DataFrame) -> list[str]:
    """Done cases without a validation error (the run stopped between recording and validating)."""
    return ledger.loc[(ledger["status"] == "done") & ledger["rel_l2"].isna(), "case_id"].tolist()


def training_set(ledger: pd.DataFrame) -> list[str]:
    """What a training starting now takes: every done, validated case, in ledger order."""
    return ledger.loc[(ledger["status"] == "done") & ledger["rel_l2"].notna(), "case_id"].tolist()


def async_evidence(config: CampaignConfig, ledger: pd.DataFrame) -> Evidence:
    """The planner's evidence: validated errors, failures, every still-proposed case as pending, and
    every point in the ledger (none is proposed twice)."""
    space = config.design.space()
    x_obs, y_obs = observed_errors(ledger, config)
    existing = space.as_tensor([json.loads(p) for p in ledger["parameters"]]) if len(ledger) else None
    evidence = Evidence(observed=x_obs, log_error=y_obs, failed=points_with_status(ledger, config, "failed"),
                        pending=points_with_status(ledger, config, "proposed"), existing=existing)
    evidence.feasible = lambda z: feasible_mask(config, z)
    return evidence


@timed("planning")
def propose_next(config: CampaignConfig, store: CampaignStore, ledger: pd.DataFrame, n: int) -> Proposal:
    """The next ``n`` cases (at most what the budget leaves): the initial Sobol design when the ledger
    is empty, else the configured strategy with every proposed case pending.

    Seeded by the proposal's position in the ledger (``strategy_for`` with ``len(ledger)`` for the
    round index), so a rerun that finds the same ledger proposes the same points.
    """
    left = None if config.budget.max_cases is None else config.budget.max_cases - len(ledger)
    round_index = newest_round(store, config.budget.rounds) + 1
    if len(ledger) == 0:
        n = config.budget.initial_cases if left is None else min(config.budget.initial_cases, left)
        x, _ = feasible_sobol(config, n, 0)
        return Proposal(0, "sobol", proposed_points(config, x))
    n = n if left is None else min(n, left)
    if n < 1:
        raise ValueError(f"the simulation budget (budget.max_cases = {config.budget.max_cases}) is spent")
    evidence = async_evidence(config, ledger)
    chosen = strategy_for(config, len(ledger), evidence)
    if chosen.needs.model is not None:
        setattr(evidence, chosen.needs.model, SCORERS[chosen.needs.model](config, store, round_index))
    with torch.random.fork_rng():
        torch.manual_seed(chosen.seed)
        x = chosen.propose(config.design.space(), n, evidence)
    faults.point("propose:planned", str(len(ledger)))
    return Proposal(round_index, chosen.name, proposed_points(config, x))


def store_proposal(config: CampaignConfig, store: CampaignStore, proposal: Proposal,
                   flow_run_id: str | None) -> list[dict[str, Any]]:
    """Write the proposal's rows (status ``proposed``) to the ledger before anything is submitted."""
    rows = proposal_rows(config, proposal, flow_run_id)
    store.upsert(rows)
    return rows


@timed("validation")
def validate_arrivals(config: CampaignConfig, store: CampaignStore, case_ids: list[str]) -> list[dict[str, Any]]:
    """Predict finished cases with the newest checkpoint (the initial model before the first) and store
    each error with its round (the number of checkpoints now) and ``validated_by``."""
    if not case_ids:
        return []
    current = newest_round(store, config.budget.rounds) + 1
    rows, _ = validate_round(config, store, current, case_ids)
    rows = [{**row, "round": current} for row in rows]
    store.upsert(rows)
    return rows


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


def round_error(ledger: pd.DataFrame, round_index: int) -> tuple[int, float | None, float | None]:
    """(count, mean, worst) validation relative L2 of the cases of ``round_index``."""
    rows = ledger[(ledger["round"] == round_index) & ledger["rel_l2"].notna()]
    if not len(rows):
        return 0, None, None
    return len(rows), float(rows["rel_l2"].mean()), float(rows["rel_l2"].max())


def stop_reason(config: CampaignConfig, ledger: pd.DataFrame, rounds_done: int,
                closed_round: int | None = None) -> str | None:
    """Why nothing more is proposed, or None: the simulation budget, the error target on the current
    round's mean (≥ ``batch_size`` cases), the round budget (``rounds − 1`` trainings beside the
    simulations), and, when ``closed_round`` has just closed, the GP-expected maximum error and
    patience over the round means."""
    b = config.budget
    if b.max_cases is not None and len(ledger) >= b.max_cases:
        return f"simulation budget spent ({len(ledger)} of {b.max_cases} cases)"
    count, mean, _ = round_error(ledger, rounds_done)
    if b.error_target is not None and mean is not None and count >= b.batch_size and mean < b.error_target:
        return (f"error target reached: mean validation relative L2 of round {rounds_done}'s {count} cases "
                f"{mean:.4f} < {b.error_target}")
    if rounds_done >= b.rounds - 1:
        return f"round budget spent ({b.rounds} rounds: the last trains on every case once the simulations end)"
    if closed_round is None:
        return None
    if b.max_error_target is not None:
        expected = expected_max_error(config, ledger, closed_round)
        if expected is not None and expected < b.max_error_target:
            return (f"accuracy target reached: GP-expected maximum error over the space {expected:.4f} "
                    f"< {b.max_error_target}")
    history = round_mean_errors(ledger, closed_round)
    if b.patience is not None and len(history) > b.patience:
        stale = rounds_without_improvement(history, b.min_improvement)
        if stale >= b.patience:
            return (f"no improvement for {stale} rounds (best round-mean validation error {min(history):.4f}; "
                    f"patience {b.patience})")
    return None


def trained_on(store: CampaignStore, round_index: int) -> set[str]:
    """The cases checkpoint ``round_index`` was trained on (none for −1)."""
    if round_index < 0:
        return set()
    return set(store.load_checkpoint(model_name(round_index)).get("trained_on", []))
