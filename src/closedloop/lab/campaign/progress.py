"""How far a campaign is, from its ledger: what the progress artifact and its summary show.

    fraction = (done + failed cases) / budget

The budget is ``budget.max_cases`` when set; otherwise, in sync mode, the rounds' cases
(``initial_cases + (rounds − 1) × batch_size``), and in async mode (which has no fixed count of
cases without ``max_cases``) the rounds: ``rounds_done / rounds``. Spend is the simulations'
seconds (``sim_seconds``) and, where the simulator reports them, CPU-seconds. The current error is
that of the newest round's validated cases (predicted before training on them), mean and worst.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from closedloop.lab.config import CampaignConfig


@dataclass
class Progress:
    cases_done: int
    cases_failed: int
    cases_running: int  # proposed, not finished
    budget: int | None  # cases; None when only rounds bound the campaign
    fraction: float  # 0 … 1
    rounds_done: int
    sim_seconds: float
    cpu_seconds: float | None
    error_round: int | None  # the round whose errors are shown
    error_cases: int
    mean_rel_l2: float | None
    worst_rel_l2: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def case_budget(config: CampaignConfig) -> int | None:
    b = config.budget
    if b.max_cases is not None:
        return b.max_cases
    if config.campaign.mode == "sync":
        return b.initial_cases + (b.rounds - 1) * b.batch_size
    return None


def _total(ledger: pd.DataFrame, column: str) -> float | None:
    if column not in ledger.columns or ledger[column].isna().all():
        return None
    return float(ledger[column].fillna(0).sum())


def campaign_progress(config: CampaignConfig, ledger: pd.DataFrame, rounds_done: int) -> Progress:
    """The campaign's progress after ``rounds_done`` complete rounds (see the module docstring)."""
    done = ledger.cases.count("done")
    failed = ledger.cases.count("failed")
    budget = case_budget(config)
    fraction = (done + failed) / budget if budget else rounds_done / config.budget.rounds
    validated = ledger.cases.validated()
    latest = int(validated["round"].max()) if len(validated) else None
    shown = validated[validated["round"] == latest] if latest is not None else validated
    return Progress(cases_done=done, cases_failed=failed, cases_running=ledger.cases.count("proposed"),
                    budget=budget, fraction=min(max(fraction, 0.0), 1.0), rounds_done=rounds_done,
                    sim_seconds=_total(ledger, "sim_seconds") or 0.0, cpu_seconds=_total(ledger, "cpu_seconds"),
                    error_round=latest, error_cases=len(shown),
                    mean_rel_l2=float(shown["rel_l2"].mean()) if len(shown) else None,
                    worst_rel_l2=float(shown["rel_l2"].max()) if len(shown) else None)


def _number(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def progress_markdown(config: CampaignConfig, p: Progress) -> str:
    """The summary artifact: cases, spend and the current validation error, as a markdown table."""
    budget = f"{p.budget}" if p.budget is not None else f"{config.budget.rounds} rounds"
    err = f"round {p.error_round}, {p.error_cases} cases" if p.error_round is not None else "none validated yet"
    rows = [("cases done / budget", f"{p.cases_done} / {budget} ({100 * p.fraction:.0f} %)"),
            ("failed", str(p.cases_failed)), ("running or waiting", str(p.cases_running)),
            ("rounds done", f"{p.rounds_done} / {config.budget.rounds}"),
            ("simulation seconds spent", f"{p.sim_seconds:.1f}"),
            ("CPU-seconds spent", _number(p.cpu_seconds, 5)),
            (f"mean validation rel. L2 ({err})", _number(p.mean_rel_l2)),
            ("worst validation rel. L2", _number(p.worst_rel_l2))]
    lines = [f"# {config.name}: progress ({config.campaign.mode})", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)
