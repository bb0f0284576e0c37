"""Ledgers for the planner inside the campaign (no simulation): validated round-0 cases of the smoke
design whose error grows towards the exhaust, and the fast planner settings."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import CampaignConfig, load_campaign_config
from closedloop.lab.store import normalise_ledger

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.toml"
FAST = {"planner.num_restarts": 2, "planner.raw_samples": 32, "planner.mc_samples": 16, "planner.maxiter": 20,
        "planner.optimizer": "pool"}


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


def planner_config() -> CampaignConfig:
    """The smoke campaign with the error GP's planner (qUCB on the log validation error) and the fast
    planner settings."""
    return load_campaign_config(SMOKE).with_overrides(**{"planner.strategy": "error", **FAST})
