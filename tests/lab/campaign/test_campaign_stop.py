"""The stop step: why a campaign stops after a round, read from the ledger."""
from __future__ import annotations

import pytest

from closedloop.lab import campaign as steps
from closedloop.lab.config import CampaignConfig
from tests.lab.planner_ledgers import ledger_of, planner_config, validated


@pytest.fixture(scope="module")
def config() -> CampaignConfig:
    return planner_config()


def test_stop_reasons_from_the_ledger(config):
    rows = validated(config)
    cfg = config.with_overrides(**{"budget.rounds": 10, "budget.error_target": None})
    ledger = ledger_of(cfg, rows)
    assert steps.stop_reason(cfg, ledger, 0) is None
    assert steps.stop_reason(cfg.with_overrides(**{"budget.max_cases": 8}), ledger, 0).startswith(
        "simulation budget spent (8 of 8")
    # errors around 0.05–0.7 over the space: a target of 0.01 is far, one of 10 is met
    assert steps.stop_reason(cfg.with_overrides(**{"budget.max_error_target": 0.01}), ledger, 0) is None
    assert steps.stop_reason(cfg.with_overrides(**{"budget.max_error_target": 10.0}), ledger, 0).startswith(
        "accuracy target reached")
    later = [(r, "done", p, 0.3) for r, (_, _, p, _) in zip((1, 1, 2, 2, 3, 3), validated(config, 14)[8:])]
    stale = ledger_of(cfg, rows + later)  # round means 0.2, 0.3, 0.3, 0.3: no improvement after round 0
    assert steps.stop_reason(cfg.with_overrides(**{"budget.patience": 3}), stale, 3).startswith(
        "no improvement for 3 rounds")
    assert steps.stop_reason(cfg.with_overrides(**{"budget.patience": 4}), stale, 3) is None
