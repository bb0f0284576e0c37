"""The stop rules (lab/campaign/stop.py): one owner, one wording, the same answers in both modes."""
from __future__ import annotations

import pandas as pd
import pytest

from closedloop.lab import campaign as steps
from closedloop.lab.campaign.stop import RULES, round_error
from closedloop.lab.config import CampaignConfig
from tests.conftest import REPO
from tests.lab.planner_ledgers import ledger_of, planner_config, validated

MODES = ("sync", "async")


@pytest.fixture(scope="module")
def config() -> CampaignConfig:
    return planner_config().with_overrides(**{"budget.rounds": 10, "budget.error_target": None})


def in_mode(config: CampaignConfig, mode: str, **overrides) -> CampaignConfig:
    return config.with_overrides(**{"campaign.mode": mode, **overrides})


def with_cpu(ledger: pd.DataFrame, seconds: float) -> pd.DataFrame:
    return ledger.assign(cpu_seconds=seconds)


def test_the_rules_and_their_order():
    assert list(RULES) == ["compute", "simulations", "error target", "accuracy", "patience", "rounds"]


@pytest.mark.parametrize("mode", MODES)
def test_budgets_say_the_same_in_both_modes(config, mode):
    ledger = ledger_of(config, validated(config))
    cfg = in_mode(config, mode)
    assert steps.stop_reason(cfg, ledger, 0) is None
    assert steps.stop_reason(cfg.with_overrides(**{"budget.max_cases": 8}), ledger, 0, closed=False) == (
        "simulation budget spent (8 of 8 cases)")
    # the compute budget holds in async mode too, and comes first
    spent = with_cpu(ledger, 0.6)  # 8 cases × 0.6 = 4.8 CPU-seconds
    both = cfg.with_overrides(**{"budget.max_cpu_seconds": 4.5, "budget.max_cases": 8})
    assert steps.stop_reason(both, spent, 0, closed=False).startswith(
        "compute budget spent: 4.8 CPU-seconds ≥ budget.max_cpu_seconds = 4.5")
    assert steps.stop_reason(cfg.with_overrides(**{"budget.max_cpu_seconds": 4.9}), spent, 0, closed=False) is None


def test_the_round_budget_counts_the_closing_training_in_async_mode(config):
    ledger = ledger_of(config, validated(config))
    sync, asyn = in_mode(config, "sync", **{"budget.rounds": 5}), in_mode(config, "async", **{"budget.rounds": 5})
    assert steps.stop_reason(sync, ledger, 4) == "round budget spent (5 rounds)"
    assert steps.stop_reason(sync, ledger, 3) is None
    # async: four trainings beside the simulations, the fifth closes the campaign
    assert steps.stop_reason(asyn, ledger, 4, closed=False).startswith("round budget spent (5 rounds; the last")
    assert steps.stop_reason(asyn, ledger, 3) == steps.stop_reason(asyn, ledger, 4, closed=False)
    assert steps.stop_reason(asyn, ledger, 3, closed=False) is None


@pytest.mark.parametrize("mode", MODES)
def test_the_error_target_waits_for_a_batch_or_the_end_of_the_round(config, mode):
    rows = validated(config)
    ledger = ledger_of(config, rows)
    count, mean, worst = round_error(ledger, 0)
    assert (count, mean, worst) == (8, pytest.approx(ledger["rel_l2"].mean()), pytest.approx(ledger["rel_l2"].max()))
    target = in_mode(config, mode, **{"budget.error_target": mean * 1.01})
    expected = f"error target reached: mean validation relative L2 of round 0's 8 cases {mean:.4f} < {mean * 1.01}"
    assert steps.stop_reason(target, ledger, 0) == expected
    assert steps.stop_reason(target, ledger, 1, closed=False) is None  # round 1 has no case yet
    assert steps.stop_reason(in_mode(config, mode, **{"budget.error_target": mean * 0.99}), ledger, 0) is None
    # fewer validated cases than a batch: not while one of the round is still in flight; at once when none is
    few = target.with_overrides(**{"budget.batch_size": 9})
    assert steps.stop_reason(few, ledger, 0) == expected
    in_flight = ledger_of(config, rows[:7] + [(0, "proposed", rows[7][2], None)])
    _, mean7, _ = round_error(in_flight, 0)
    assert steps.stop_reason(few, in_flight, 0, closed=False) is None
    assert steps.stop_reason(target.with_overrides(**{"budget.batch_size": 7, "budget.error_target": mean7 * 1.01}),
                             in_flight, 0, closed=False).startswith("error target reached")


@pytest.mark.parametrize("mode", MODES)
def test_accuracy_and_patience_judge_closed_rounds(config, mode):
    rows = validated(config)
    ledger = ledger_of(config, rows)
    cfg = in_mode(config, mode)
    # errors around 0.05–0.7 over the space: a target of 0.01 is far, one of 10 is met once the round closes
    assert steps.stop_reason(cfg.with_overrides(**{"budget.max_error_target": 0.01}), ledger, 0) is None
    met = cfg.with_overrides(**{"budget.max_error_target": 10.0})
    assert steps.stop_reason(met, ledger, 0).startswith("accuracy target reached")
    assert steps.stop_reason(met, ledger, 0, closed=False) is None
    later = [(r, "done", p, 0.3) for r, (_, _, p, _) in zip((1, 1, 2, 2, 3, 3), validated(config, 14)[8:])]
    stale = ledger_of(cfg, rows + later)  # round means 0.2, 0.3, 0.3, 0.3: no improvement after round 0
    assert steps.stop_reason(cfg.with_overrides(**{"budget.patience": 3}), stale, 3).startswith(
        "no improvement for 3 rounds")
    assert steps.stop_reason(cfg.with_overrides(**{"budget.patience": 3}), stale, 3, closed=False) is None
    assert steps.stop_reason(cfg.with_overrides(**{"budget.patience": 4}), stale, 3) is None


def test_one_owner_of_the_wording():
    """No other module writes a stop reason (the async mode once had copies of the messages)."""
    src = REPO / "src" / "closedloop"
    writers = {path.relative_to(src).as_posix() for path in src.rglob("*.py")
               for phrase in ("budget spent", "target reached:", "no improvement for")
               if phrase in path.read_text()}
    assert writers == {"lab/campaign/stop.py"}
