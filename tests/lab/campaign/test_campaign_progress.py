"""Progress from the ledger: cases done over the budget, spend, the newest round's error."""
from __future__ import annotations

import pytest

from closedloop.lab.campaign.progress import (
    campaign_progress,
    case_budget,
    progress_markdown,
)
from tests.lab.planner_ledgers import ledger_of, planner_config, validated


@pytest.fixture(scope="module")
def config():
    return planner_config()


def test_progress_counts_cases_against_the_budget(config):
    rows = validated(config, 6)
    rows[4] = (1, "proposed", rows[4][2], None)
    rows[5] = (1, "done", rows[5][2], 0.25)
    ledger = ledger_of(config, rows)
    ledger["sim_seconds"] = [1.0, 2.0, 3.0, 4.0, float("nan"), 5.0]
    p = campaign_progress(config, ledger, rounds_done=1)
    # smoke: 2 rounds of 4 → a budget of 8 cases; 5 finished
    assert case_budget(config) == 8 and p.budget == 8
    assert (p.cases_done, p.cases_failed, p.cases_running) == (5, 0, 1)
    assert p.fraction == pytest.approx(5 / 8) and p.sim_seconds == pytest.approx(15.0)
    assert p.cpu_seconds is None  # no simulator reported CPU-seconds
    # the newest round with validated cases is round 1: one case at 0.25
    assert (p.error_round, p.error_cases, p.mean_rel_l2, p.worst_rel_l2) == (1, 1, 0.25, 0.25)
    text = progress_markdown(config, p)
    assert "| cases done / budget | 5 / 8 (62 %) |" in text and "| worst validation rel. L2 | 0.25 |" in text


def test_max_cases_is_the_budget_and_async_without_it_counts_rounds(config):
    capped = config.with_overrides(**{"budget.max_cases": 20})
    assert case_budget(capped) == 20
    open_ended = config.with_overrides(**{"campaign.mode": "async", "budget.rounds": 4})
    assert case_budget(open_ended) is None
    p = campaign_progress(open_ended, ledger_of(config, validated(config, 3)), rounds_done=1)
    assert p.fraction == pytest.approx(0.25) and p.budget is None
    assert "4 rounds" in progress_markdown(open_ended, p)
