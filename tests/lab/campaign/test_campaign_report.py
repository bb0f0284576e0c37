"""The report step: a round's planner summary (strategy, proposals, stopping rule) and error map."""
from __future__ import annotations

import pytest
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import CampaignConfig
from tests.lab.planner_ledgers import ledger_of, planner_config, validated


@pytest.fixture(scope="module")
def config() -> CampaignConfig:
    return planner_config()


def test_round_report_shows_strategy_proposals_stop_reason_and_error_map(config):
    ledger = ledger_of(config, validated(config))
    lines = "\n".join(steps.planner_report(config, ledger, 0))
    assert "Strategy: **sobol**" in lines and "configured `error`" in lines
    assert lines.count("| done |") == 8
    assert "Stopping rule: continue" in lines
    stop = "\n".join(steps.planner_report(config.with_overrides(**{"budget.max_cases": 8}), ledger, 0))
    assert "**stop** — simulation budget spent" in stop
    cut = steps.predicted_error_slice(config, ledger, n=12)
    assert cut.names == ("source_x", "source_y") and cut.error.shape == (12, 12)
    assert set(cut.fixed) == {"inlet_speed"}
    # the predicted error grows with x like the data, and the pillar's cells are masked
    finite = torch.nan_to_num(cut.error, nan=0.0)
    assert finite[:, -1].max() > finite[:, 0].max()
    assert torch.isnan(cut.error).any()
