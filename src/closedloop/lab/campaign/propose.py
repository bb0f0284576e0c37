"""The propose step: what the planner knows (evidence from the ledger) and the round's proposal.

Round 0 is a Sobol design; later rounds ask the configured strategy (planners/strategies.py).
Proposals are put on the design space's resolution grid (``design.proposed_points``) and stored in
the ledger (status ``proposed``) before anything is simulated, so a resumed round simulates what it
proposed the first time, and its case ids hash the same.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pandas as pd
import torch

from closedloop.lab import faults
from closedloop.lab.campaign.design import (candidate_problems, feasible_mask, feasible_sobol, proposed_points,
                                            scenario_for)
from closedloop.lab.campaign.cost import add_levels, fit_cost_model, reserve_top, within_budget
from closedloop.lab.campaign.fidelity import proposal_levels
from closedloop.lab.campaign.learn import initial_model, model_for_round
from closedloop.lab.campaign.state import round_complete
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore, now_iso
from closedloop.lab.timing import timed
from closedloop.planners.ensemble import disagreement
from closedloop.planners.strategies import Evidence, Sobol, Strategy, make_strategy
from closedloop.surrogates.sensitivity import fisher_sketch


@dataclass
class Proposal:
    round: int
    strategy: str
    parameters: list[dict[str, float]]


def observed_errors(ledger: pd.DataFrame, config: CampaignConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, log relative L2) of every validated case; failed and unvalidated cases are left out."""
    rows = ledger.cases.validated()
    space = config.design.space()
    x = space.as_tensor(rows.cases.params())
    y = torch.tensor(rows["log_rel_l2"].to_numpy(dtype=float), dtype=torch.float64)
    return x.reshape(-1, space.dim), y


def points_with_status(ledger: pd.DataFrame, config: CampaignConfig, status: str) -> torch.Tensor:
    """Design points (n x d) of the ledger's cases with ``status``."""
    rows = ledger.cases.with_status(status)
    space = config.design.space()
    if len(rows) == 0:
        return torch.empty(0, space.dim, dtype=torch.float64)
    return space.as_tensor(rows.cases.params())


def evidence_for(config: CampaignConfig, ledger: pd.DataFrame) -> Evidence:
    """What the planner sees: validated errors (failed cases excluded), failures, every case whose
    error is not known yet as pending (BoTorch's ``X_pending``: proposed, running or waiting, and done
    but not yet validated, which async mode's next proposal may precede), every point in the ledger
    (none is proposed twice), the feasibility test, and each point's level in a multi-fidelity campaign."""
    space = config.design.space()
    x_obs, y_obs = observed_errors(ledger, config)
    existing = space.as_tensor(ledger.cases.params()) if len(ledger) else None
    pending = ledger.cases.pending()
    pending = space.as_tensor(pending.cases.params()) if len(pending) else torch.empty(0, space.dim, dtype=torch.float64)
    evidence = Evidence(observed=x_obs, log_error=y_obs, failed=points_with_status(ledger, config, "failed"),
                        pending=pending, existing=existing)
    evidence.feasible = lambda z: feasible_mask(config, z)
    return add_levels(config, ledger, evidence) if config.fidelity else evidence


def remaining_cases(config: CampaignConfig, ledger: pd.DataFrame) -> int | None:
    """Simulations left in the budget (every proposed, done or failed case counts), or None."""
    if config.budget.max_cases is None:
        return None
    return max(config.budget.max_cases - len(ledger), 0)


def trained_rounds(store: CampaignStore, round_index: int, strategy: str) -> list[int]:
    """Rounds before ``round_index`` with a checkpoint, newest first; a model-scoring strategy needs one."""
    rounds = [r for r in range(round_index - 1, -1, -1) if round_complete(store, r)]
    if not rounds:
        raise ValueError(f"round {round_index}: strategy {strategy!r} needs a trained round (a checkpoint) first")
    return rounds


def ensemble_scorer(config: CampaignConfig, store: CampaignStore, round_index: int):
    """Disagreement of a snapshot ensemble: the models of the last ``ensemble_members`` rounds
    (the untrained model fills in early on), each rolling out every candidate scenario."""
    def score(candidates: torch.Tensor) -> torch.Tensor:
        scenarios, forcing, problem = candidate_problems(config, candidates)
        rounds = trained_rounds(store, round_index, "ensemble")
        members = [model_for_round(config, store, r, scenarios) for r in rounds[:config.planner.ensemble_members]]
        if len(members) < 2:
            members.append(initial_model(config, scenarios))
        with torch.no_grad():
            preds = torch.stack([m.rollout(forcing, problem.n_steps)[:, 1:] for m in members])
        return disagreement(preds)
    return score


def information_scorer(config: CampaignConfig, store: CampaignStore, round_index: int):
    """Parameter information (sketched Fisher, ``surrogates.sensitivity``) of scenarios under the
    latest trained model: what each would teach it, for the greedy D-optimal batch."""
    def information(points: torch.Tensor) -> torch.Tensor:
        scenarios, forcing, problem = candidate_problems(config, points)
        model = model_for_round(config, store, trained_rounds(store, round_index, "information")[0], scenarios)
        return fisher_sketch(model, forcing, problem.n_steps, k=config.planner.information_directions,
                             seed=config.round_seed(round_index),
                             differences=config.planner.information_differences)
    return information


SCORERS = {"disagreement": ensemble_scorer, "information": information_scorer}


def strategy_for(config: CampaignConfig, round_index: int, evidence: Evidence) -> Strategy:
    """The configured strategy, or the campaign's Sobol sequence continued while the evidence is
    short of what it needs (a GP needs two validated cases); seeded per round, or by the campaign
    seed for a strategy that continues one sequence."""
    settings = config.planner.settings()
    chosen = make_strategy(config.planner.strategy, settings)
    if len(evidence.log_error) < chosen.needs.errors:
        chosen = Sobol(settings)
    return dataclasses.replace(chosen, seed=config.seed if chosen.sequence else config.round_seed(round_index))


@timed("planning")
def propose(config: CampaignConfig, ledger: pd.DataFrame, round_index: int, n: int,
            store: CampaignStore | None = None, *, seed_index: int | None = None) -> Proposal:
    """The next ``n`` cases (at most what ``budget.max_cases`` leaves), for both modes.

    An empty ledger gets the campaign's initial Sobol design (``initial_cases``, or the
    ``fidelity_plan.initial`` counts per level); later proposals ask the configured strategy
    (planners/strategies.py) on :func:`evidence_for`, with the surrogate's score (of the newest
    checkpoint before ``round_index``) where the strategy needs one, seeded by ``seed_index``
    (default the round). In a multi-fidelity campaign each case gets its level and the proposal is
    cut to what the compute budget leaves (``cost.within_budget``).
    """
    left = remaining_cases(config, ledger)
    seed_round = round_index if seed_index is None else seed_index
    initial = len(ledger) == 0
    if initial:
        n = config.budget.initial_cases
        if config.fidelity and config.fidelity_plan.initial:
            n = sum(config.fidelity_plan.initial.values())
    if left is not None:
        n = min(n, left)
    if n < 1:
        raise ValueError(f"round {round_index}: the simulation budget (budget.max_cases = "
                         f"{config.budget.max_cases}) is spent")
    space = config.design.space()
    if initial:
        x, _ = feasible_sobol(config, n, 0)
        proposal = Proposal(round_index, "sobol", proposed_points(config, x))
        if config.fidelity:
            proposal.parameters = proposal_levels(config, proposal.parameters, None, config.fidelity_plan.initial)
    else:
        evidence = evidence_for(config, ledger)
        chosen = strategy_for(config, seed_round, evidence)
        if chosen.needs.model is not None:
            if store is None:
                raise ValueError(f"planner.strategy {chosen.name!r}: proposing needs the campaign store (its checkpoints)")
            setattr(evidence, chosen.needs.model, SCORERS[chosen.needs.model](config, store, round_index))
        # The GP fit may draw random restarts from the global generator: seed it, so that a resumed
        # process (whose generator has another history) proposes what an uninterrupted one would.
        with torch.random.fork_rng():
            torch.manual_seed(chosen.seed)
            x = chosen.propose(space, n, evidence)
        proposal = Proposal(round_index, chosen.name, proposed_points(config, x[:, :space.dim]))
        if config.fidelity:
            proposal.parameters = proposal_levels(config, proposal.parameters,
                                                  x[:, space.dim] if chosen.chooses_fidelity else None,
                                                  config.fidelity_plan.mix)
            model = fit_cost_model(config, ledger)
            proposal.parameters = within_budget(config, ledger, reserve_top(config, ledger, proposal.parameters, model),
                                                model)
    faults.point("propose:planned", str(seed_round))
    return proposal


def propose_round(config: CampaignConfig, ledger: pd.DataFrame, round_index: int,
                  store: CampaignStore | None = None) -> Proposal:
    """Sync mode's round: the initial design in round 0, then ``batch_size`` cases a round."""
    return propose(config, ledger, round_index, config.budget.batch_size, store)


def proposal_rows(config: CampaignConfig, proposal: Proposal, flow_run_id: str | None) -> list[dict]:
    rows = []
    producer = config.simulation.producer()  # the simulator's identity, part of the case id
    for params in proposal.parameters:
        scenario = scenario_for(config, params)
        rows.append({"case_id": scenario.case_id(producer), "round": proposal.round, "status": "proposed",
                     "strategy": proposal.strategy, "parameters": json.dumps(params, sort_keys=True),
                     "proposed_at": now_iso(), "flow_run_id": flow_run_id,
                     **({"fidelity": params["fidelity"]} if "fidelity" in params else {})})
    return rows


def round_proposals(config: CampaignConfig, store: CampaignStore, round_index: int,
                    flow_run_id: str | None = None) -> tuple[list[dict[str, float]], Proposal | None]:
    """The round's cases still to simulate: the stored proposals if the round was started before,
    else new ones, stored in the ledger first. Returns them and the new proposal (None if stored)."""
    ledger = store.read_ledger()
    mine = ledger.cases.of_round(round_index)
    proposal = None
    if len(mine) == 0:
        proposal = propose_round(config, ledger, round_index, store)
        store.upsert(proposal_rows(config, proposal, flow_run_id))
        mine = store.read_ledger().cases.of_round(round_index)
    pending = mine[mine["status"] != "failed"]
    return pending.cases.params(), proposal
