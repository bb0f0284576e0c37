"""The per-level cost model: CPU-seconds of a case, fitted from what the ledger recorded.

cost_l(x) = a_l · p_l(x), with p_l(x) the prior cost of the point's scenario at level l (fluid cells ×
time steps, :func:`closedloop.simulators.fidelity.prior_cost`) and a_l = Σ cpu / Σ p over the done
cases of level l (least squares through the origin, weighted by p); a level without cases takes the
pooled a of all levels, and with no case recorded a = 1 (costs in prior units, whose ratios still hold).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import torch

from closedloop.planners.strategies import Evidence

from closedloop.lab.campaign.design import scenario_for
from closedloop.lab.campaign.fidelity import case_levels, spend_by_level, top_level, with_level
from closedloop.lab.fidelity_config import fidelity_value
from closedloop.lab.config import CampaignConfig
from closedloop.simulators.fidelity import prior_cost
from closedloop.simulators.geometry import room_geometry


@dataclass(frozen=True)
class CostModel:
    """Seconds per unit of prior cost for each level (``scale``), and how many cases fitted it."""

    scale: dict[str, float]
    cases: dict[str, int]

    def seconds(self, config: CampaignConfig, points: list[dict[str, float]], level: str) -> torch.Tensor:
        """Expected CPU-seconds of each design point (n,) at ``level`` (one fluid-cell count per level
        when the design does not move the geometry)."""
        cells = None
        if not config.design.moves_geometry():
            cells = int(room_geometry(scenario_for(config, with_level(points[0], level))).fluid.sum().item())
        return torch.tensor([self.scale[level] * prior_cost(scenario_for(config, with_level(p, level)), cells)
                             for p in points], dtype=torch.float64)


def fit_cost_model(config: CampaignConfig, ledger: pd.DataFrame) -> CostModel:
    """a_l from the ledger's done cases with recorded ``cpu_seconds`` (see the module docstring)."""
    names = [lv.name for lv in config.fidelity]
    done = ledger.cases.done()
    done = done[done["cpu_seconds"].notna()]
    cpu = {n: 0.0 for n in names}
    prior = {n: 0.0 for n in names}
    count = {n: 0 for n in names}
    if len(done):
        for level, params, seconds in zip(case_levels(config, done), done["parameters"], done["cpu_seconds"]):
            cpu[level] += float(seconds)
            prior[level] += prior_cost(scenario_for(config, json.loads(params)))
            count[level] += 1
    pooled = sum(cpu.values()) / sum(prior.values()) if sum(prior.values()) > 0 else 1.0
    scale = {n: cpu[n] / prior[n] if count[n] and prior[n] > 0 else pooled for n in names}
    return CostModel(scale=scale, cases=count)


def add_levels(config: CampaignConfig, ledger: pd.DataFrame, evidence: Evidence) -> Evidence:
    """The evidence of a multi-fidelity campaign: the level value of each observed, pending and
    existing point (the rows ``propose.evidence_for`` takes, in its order), the levels, and the
    cost model fitted to the ledger as ``level_cost``: (n x d) points → (n x L) CPU-seconds."""
    def values(rows: pd.DataFrame) -> torch.Tensor:
        return torch.tensor([fidelity_value(config.fidelity, lv) for lv in case_levels(config, rows)],
                            dtype=torch.float64)

    if len(ledger):
        observed = ledger.cases.validated()
        pending = ledger.cases.pending()  # the rows of evidence_for's pending points, in order
        evidence.observed_fidelity, evidence.pending_fidelity = values(observed), values(pending)
        evidence.existing_fidelity = values(ledger)
    else:
        evidence.observed_fidelity = torch.empty(0, dtype=torch.float64)
    model = fit_cost_model(config, ledger)
    space = config.design.space()
    names = [lv.name for lv in config.fidelity]
    evidence.levels = tuple(fidelity_value(config.fidelity, n) for n in names)
    evidence.level_cost = lambda x: torch.stack([model.seconds(config, space.as_dicts(x), n) for n in names], dim=1)
    return evidence


def top_and_total_seconds(config: CampaignConfig, ledger: pd.DataFrame, model: CostModel) -> tuple[float, float]:
    """(top level, all levels) CPU-seconds: recorded for done cases, expected (``model``) for those in flight."""
    top_name = top_level(config)
    spent = spend_by_level(config, ledger)
    top, total = spent[top_name]["cpu_seconds"], sum(v["cpu_seconds"] for v in spent.values())
    flying = ledger.cases.proposed()
    for level, params in zip(case_levels(config, flying), flying.cases.params()):
        cost = float(model.seconds(config, [params], level)[0])
        total += cost
        top += cost if level == top_name else 0.0
    return top, total


def reserve_top(config: CampaignConfig, ledger: pd.DataFrame, parameters: list[dict],
                model: CostModel | None = None) -> list[dict]:
    """A proposal's case parameters with the top level's share kept: in order, a case goes to the top
    level while the top level's CPU-seconds (spent, in flight, and of the cases before it in the
    proposal) are below ``fidelity_plan.top_share`` of all. Without a share, unchanged. ``model``:
    the ledger's cost model, if already fitted."""
    share = config.fidelity_plan.top_share
    if share is None or not parameters:
        return parameters
    model = model or fit_cost_model(config, ledger)
    top_name = top_level(config)
    top, total = top_and_total_seconds(config, ledger, model)
    out = []
    for params in parameters:
        if total <= 0 or top < share * total:
            params = with_level(params, top_name)
        cost = float(model.seconds(config, [params], params["fidelity"])[0])
        total += cost
        top += cost if params["fidelity"] == top_name else 0.0
        out.append(params)
    return out


def within_budget(config: CampaignConfig, ledger: pd.DataFrame, parameters: list[dict],
                  model: CostModel | None = None) -> list[dict]:
    """The longest prefix of a proposal's case parameters whose expected CPU-seconds fit one round's
    budget (``fidelity_plan.round_cpu_seconds``) and what is left of ``budget.max_cpu_seconds``; at
    least one case. A ledger without recorded costs keeps them whole (the initial design never comes here).
    ``model``: the ledger's cost model, if already fitted."""
    limits = [config.budget.max_cpu_seconds - ledger.cases.spend()] if config.budget.max_cpu_seconds is not None else []
    if config.fidelity_plan.round_cpu_seconds is not None:
        limits.append(config.fidelity_plan.round_cpu_seconds)
    model = model or fit_cost_model(config, ledger)
    if not limits or not parameters or not sum(model.cases.values()):
        return parameters
    total, keep = 0.0, 0
    for params in parameters:
        total += float(model.seconds(config, [params], params["fidelity"])[0])
        if keep and total > min(limits):
            break
        keep += 1
    return parameters[:keep]
