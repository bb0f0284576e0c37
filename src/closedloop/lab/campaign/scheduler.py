"""The campaign's scheduling decisions, both modes, as plain functions (flows/campaign_loop.py runs
them in its one loop; :class:`Cadence` is all that differs between the modes).

The loop keeps simulations in flight, records and validates what ends (each case predicted by the
newest checkpoint, before any training on it: a training takes only cases validated before it
starts), trains on its own worker, and asks the stop rules (lab/campaign/stop.py).

**Sync** (``batched``): round ``r`` proposes its batch (the initial design, then ``batch_size``
cases, seeded by the round) once round ``r − 1`` is trained and published; ``W`` of its cases run at
once; once every one has ended they are recorded and validated together, then the round trains on
every validated case of rounds ≤ ``r``, publishes its report, and the rules are asked.

**Async**: a pool of ``W`` simulations (:func:`simulation_workers`) with ``queued`` more waiting
(``[campaign] queued``) is kept full, so a worker that frees starts its next case at once. Whenever
a case finishes it is recorded and validated, and the planner proposes its replacement with every
case still proposed (running or waiting) as pending (BoTorch ``X_pending``), seeded by its place in
the ledger. Retraining runs beside the simulations, one at a time, warm-started, on every validated
case when it starts.

**Rounds in async mode.** Round ``k`` is the ``k``-th retraining and the cases checkpoint ``k − 1``
predicted (round 0: the initial model): a case's ``round`` is written when it is proposed (the
number of checkpoints then) and written again when it is validated (the number of checkpoints
then, ``validated_by`` names the model), so ``round_NNN.md`` reports, as in sync mode, the cases
round ``k − 1``'s model predicted, and round ``k`` is closed when checkpoint ``k`` is written. Round
0 trains once ``budget.initial_cases`` cases are validated (the full schedule); later rounds as soon
as the trainer is free and a validated case is new to it (``warm_start_epochs``).

**Stopping**: the rules of lab/campaign/stop.py, the same objects and wording in both modes,
evaluated as trainings end (on the round just closed) and, in async mode, as cases arrive (on the
open round). ``budget.rounds`` counts trainings; in async mode at most ``rounds − 1`` run beside the
simulations. Once a reason holds nothing more is proposed; the cases in flight finish (recorded and
validated), then a last training on every case closes the campaign (in sync mode, the round's own).

**Crashes.** The ledger is the one record: proposals are stored before they are submitted, a
finished case is ``done`` before it is validated, so a rerun after ``kill -9`` submits every case
still ``proposed`` again (a case whose file was written is reused, not simulated again: no
duplicate ids, no lost done case, a case in flight re-run once), validates done cases that lack an
error, and finds the same stop reason from the ledger and the checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from closedloop.lab.campaign.learn import training_set
from closedloop.lab.campaign.propose import Proposal, propose, proposal_rows
from closedloop.lab.campaign.state import model_name
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.simulators.concurrency import concurrent_limit


@dataclass(frozen=True)
class Cadence:
    """How the one loop paces a campaign, the only thing the modes do not share.

    ``batched`` (sync): a round's batch is proposed only when the round before is trained and
    published, its outcomes are recorded and validated together once all have ended, and it trains
    then; otherwise (async) each case is recorded, validated and replaced as it ends, and trainings
    run beside the simulations. ``in_flight``: simulations submitted at once (sync: the ``W``
    workers; async: ``W`` plus ``queued`` waiting, so that a freed worker starts at once).
    """

    batched: bool
    in_flight: int


def cadence(config: CampaignConfig) -> Cadence:
    """The cadence of ``[campaign] mode``."""
    if config.campaign.mode == "async":
        return Cadence(batched=False, in_flight=pool_size(config))
    return Cadence(batched=True, in_flight=simulation_workers(config))


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
    """The next cases, every proposed case pending (``propose.propose``), so that a rerun that finds
    the same ledger proposes the same points. Sync: round ``open_round``'s batch (the initial design,
    then ``batch_size`` cases; ``n`` is not used), seeded by the round. Async: ``n`` cases of the open
    round, seeded by the proposal's position in the ledger."""
    round_index = open_round(config, store)
    if cadence(config).batched:
        return propose(config, ledger, round_index, config.budget.batch_size, store)
    return propose(config, ledger, round_index, n, store, seed_index=len(ledger))


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


def batch_in(ledger: pd.DataFrame, round_index: int) -> bool:
    """Sync: round ``round_index`` has proposed its batch and every case of it has ended (recorded)."""
    mine = ledger.cases.of_round(round_index)
    return len(mine) > 0 and len(mine.cases.proposed()) == 0


def retrain_due(config: CampaignConfig, ledger: pd.DataFrame, trained_on: set[str], rounds_done: int,
                closing: bool) -> bool:
    """Whether the free trainer should start round ``rounds_done`` now.

    Sync: once the round's batch is in (:func:`batch_in`; a round whose every case failed trains
    too, and is refused there). Async: a validated case it has not trained on, round 0 only with
    ``initial_cases`` validated, and (unless ``closing``: nothing more will arrive) at most
    ``rounds − 1`` rounds beside the simulations."""
    if cadence(config).batched:
        return rounds_done < config.budget.rounds and batch_in(ledger, rounds_done)
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
