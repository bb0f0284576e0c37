"""The stop step: why a campaign stops after a round (planners/stopping.py on the ledger)."""
from __future__ import annotations

import pandas as pd
import torch

from closedloop.lab.campaign.design import feasible_mask
from closedloop.lab.campaign.fidelity import spend
from closedloop.lab.campaign.propose import observed_errors
from closedloop.lab.config import CampaignConfig
from closedloop.planners import fit_error_model, stopping


def round_mean_errors(ledger: pd.DataFrame, up_to: int) -> list[float]:
    """Mean validation relative L2 of each round 0 … ``up_to`` that has validated cases."""
    rows = ledger[ledger["rel_l2"].notna() & (ledger["round"] <= up_to)]
    return [float(g["rel_l2"].mean()) for _, g in rows.groupby("round", sort=True)]


def expected_max_error(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> float | None:
    """The error GP's E[max_x relative L2] over the feasible space (None with < 2 validated cases)."""
    x_obs, y_obs = observed_errors(ledger, config)
    if len(y_obs) < 2:
        return None
    space = config.design.space()
    seed = config.seed * 1000 + round_index + 500
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gp = fit_error_model(space, x_obs, y_obs)
        return stopping.expected_max_error(gp, space, seed=seed, n_points=256,
                                           feasible=lambda z: feasible_mask(config, z))


def stop_reason(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> str | None:
    """Why the campaign stops after ``round_index``, or None to go on (planners/stopping.py):
    simulation budget, round-mean error target, GP-expected maximum error target, patience,
    round budget, in that order."""
    b = config.budget
    if b.max_cpu_seconds is not None and spend(ledger) >= b.max_cpu_seconds:
        return f"compute budget spent: {spend(ledger):.1f} CPU-seconds ≥ budget.max_cpu_seconds = {b.max_cpu_seconds}"
    target = b.error_target
    rows = ledger[(ledger["round"] == round_index) & ledger["rel_l2"].notna()]
    if target is not None and len(rows) and rows["rel_l2"].mean() < target:
        return f"error target reached: mean validation relative L2 {rows['rel_l2'].mean():.4f} < {target}"
    expected = expected_max_error(config, ledger, round_index) if b.max_error_target is not None else None
    return stopping.stop_reason(cases_used=len(ledger), max_cases=b.max_cases, rounds_done=round_index + 1,
                                max_rounds=b.rounds, expected_max=expected, max_error_target=b.max_error_target,
                                history=round_mean_errors(ledger, round_index), patience=b.patience,
                                min_improvement=b.min_improvement)
