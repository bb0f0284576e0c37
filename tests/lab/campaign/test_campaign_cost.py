"""The per-level cost model, the round's compute budget and the stop in CPU-seconds."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from closedloop.lab.campaign.cost import add_levels, fit_cost_model, within_budget
from closedloop.lab.campaign.design import scenario_for
from closedloop.lab.campaign.fidelity import with_level
from closedloop.lab.campaign.propose import evidence_for
from closedloop.lab.campaign.stop import stop_reason
from closedloop.lab.store import empty_ledger, normalise_ledger
from closedloop.simulators.fidelity import prior_cost
from tests.lab.campaign.mf_config import mf_config

POINT = {"source_x": 2.0, "source_y": 2.0, "inlet_speed": 0.5}


def ledger_of(rows: list[tuple[dict, str, float, int]]) -> pd.DataFrame:
    """Done cases: (point, level, cpu_seconds, round)."""
    return normalise_ledger(pd.DataFrame([
        {"case_id": f"c{i}", "round": r, "status": "done", "strategy": "sobol",
         "parameters": json.dumps(with_level(p, lv)), "fidelity": lv, "cpu_seconds": cpu,
         "rel_l2": 0.1 + 0.01 * i, "log_rel_l2": -2.0 + 0.1 * i}
        for i, (p, lv, cpu, r) in enumerate(rows)]))


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return mf_config(tmp_path_factory.mktemp("cost"))


def test_scale_is_seconds_per_prior_unit_per_level_pooled_where_a_level_has_none(config):
    a, b = dict(POINT), {**POINT, "inlet_speed": 1.2}
    led = ledger_of([(a, "coarse", 0.1, 0), (b, "coarse", 0.3, 0)])
    prior = [prior_cost(scenario_for(config, with_level(p, "coarse"))) for p in (a, b)]
    model = fit_cost_model(config, led)
    assert model.scale["coarse"] == pytest.approx(0.4 / sum(prior), rel=1e-12)
    assert model.scale["fine"] == model.scale["coarse"] and model.cases == {"coarse": 2, "fine": 0}
    led = ledger_of([(a, "coarse", 0.1, 0), (b, "coarse", 0.3, 0), (a, "fine", 5.0, 0)])
    model = fit_cost_model(config, led)
    fine = float(model.seconds(config, [a], "fine")[0])
    assert fine == pytest.approx(5.0, rel=1e-12)  # one fine case: its own cost back
    assert float(model.seconds(config, [b], "fine")[0]) > fine  # a faster inlet: more steps
    assert fit_cost_model(config, empty_ledger()).scale == {"coarse": 1.0, "fine": 1.0}  # prior units


def test_a_round_keeps_the_prefix_its_budget_affords(config):
    led = ledger_of([(POINT, "coarse", 0.1, 0), (POINT, "fine", 2.0, 0)])
    plan = [with_level({**POINT, "source_x": 1.0 + i}, lv) for i, lv in enumerate(["coarse", "fine", "fine", "coarse"])]
    capped = config.with_overrides(**{"fidelity_plan.round_cpu_seconds": 3.0})
    kept = within_budget(capped, led, plan)
    assert [p["fidelity"] for p in kept] == ["coarse", "fine"]  # a second fine case would pass 3 s
    spent = config.with_overrides(**{"budget.max_cpu_seconds": 2.2})
    assert len(within_budget(spent, led, plan)) == 1  # at least one case


def test_the_campaign_stops_when_its_cpu_seconds_are_spent(config):
    led = ledger_of([(POINT, "coarse", 0.5, 0), (POINT, "fine", 4.0, 0)])
    assert stop_reason(config.with_overrides(**{"budget.max_cpu_seconds": 4.5}), led, 0).startswith(
        "compute budget spent: 4.5 CPU-seconds")
    assert stop_reason(config.with_overrides(**{"budget.max_cpu_seconds": 4.6, "budget.rounds": 5}), led, 0) is None


def test_evidence_carries_levels_and_the_cost_model(config):
    led = ledger_of([(POINT, "coarse", 0.1, 0), ({**POINT, "source_x": 5.5}, "fine", 2.0, 0)])
    ev = evidence_for(config, led)
    assert ev.observed_fidelity.tolist() == [0.0, 1.0] and ev.levels == (0.0, 1.0)
    assert ev.existing_fidelity.tolist() == [0.0, 1.0]
    costs = ev.level_cost(ev.observed)
    assert costs.shape == (2, 2) and bool((costs[:, 1] > costs[:, 0]).all())
    assert add_levels(config, empty_ledger(), evidence_for(config, empty_ledger())).observed_fidelity.numel() == 0


def test_async_proposals_carry_levels_with_the_running_cases_pending_at_theirs(config, tmp_path):
    """Async mode proposes through the same step as sync mode: the multi-fidelity planner picks each
    replacement's point and level, the running case is pending at its level, and the compute budget
    cuts the proposal."""
    from closedloop.lab.campaign import scheduler
    from closedloop.lab.store import CampaignStore

    mf = config.with_overrides(**{"campaign.mode": "async", "planner.strategy": "multifidelity", "planner.num_restarts": 2,
                                  "planner.raw_samples": 32, "planner.mc_samples": 16, "planner.maxiter": 20})
    points = [{**POINT, "source_x": x, "source_y": y} for x, y in ((2.0, 2.0), (7.5, 4.0), (5.0, 1.2), (3.0, 4.5))]
    done = ledger_of([(p, lv, cpu, 0) for p, lv, cpu in zip(points, ("coarse", "coarse", "coarse", "fine"),
                                                               (0.1, 0.1, 0.1, 1.0))])
    running = {**POINT, "source_x": 8.5, "source_y": 1.0}
    ledger = normalise_ledger(pd.concat([done, pd.DataFrame([{
        "case_id": "run", "round": 0, "status": "proposed", "strategy": "sobol",
        "parameters": json.dumps(with_level(running, "fine")), "fidelity": "fine"}])], ignore_index=True))
    evidence = evidence_for(mf, ledger)
    assert evidence.pending.tolist() == [[8.5, 1.0, 0.5]] and evidence.pending_fidelity.tolist() == [1.0]
    store = CampaignStore(tmp_path / "camp")
    proposal = scheduler.propose_next(mf, store, ledger, 2)
    assert proposal.strategy == "multifidelity" and len(proposal.parameters) == 2
    assert {p["fidelity"] for p in proposal.parameters} <= {"coarse", "fine"}
    assert all({**p, "fidelity": None} != {**running, "fidelity": None} for p in proposal.parameters)
    # 1.3 of 1.35 CPU-seconds spent: what is left affords one case, whatever its level
    capped = scheduler.propose_next(mf.with_overrides(**{"budget.max_cpu_seconds": 1.35}), store, ledger, 2)
    assert len(capped.parameters) == 1


def test_a_top_level_share_is_kept_whatever_the_planner_chose(config):
    """``fidelity_plan.top_share``: while the top level holds less than its share of the CPU-seconds
    (spent and in flight), the next case goes to the top level; above it, the planner's level stays."""
    from closedloop.lab.campaign.cost import reserve_top

    led = ledger_of([(POINT, "coarse", 0.1, 0), ({**POINT, "source_x": 5.5}, "coarse", 0.1, 0),
                     ({**POINT, "source_x": 7.5}, "fine", 1.0, 0)])  # top share 1.0 / 1.2 = 83 %
    chosen = [with_level({**POINT, "source_y": y}, "coarse") for y in (1.0, 3.0, 4.0)]
    assert reserve_top(config, led, chosen) == chosen  # no share asked: the planner's levels
    kept = config.with_overrides(**{"fidelity_plan.top_share": 0.5})
    assert reserve_top(kept, led, chosen) == chosen  # 83 % ≥ 50 %: nothing to keep
    starved = ledger_of([(POINT, "coarse", 0.1, 0), ({**POINT, "source_x": 5.5}, "fine", 0.1, 0)]
                        + [({**POINT, "source_x": x}, "coarse", 0.3, 0) for x in (2.5, 3.5, 4.5, 6.5)])
    levels = [p["fidelity"] for p in reserve_top(kept, starved, chosen)]  # top share 0.1 / 1.4 = 7 %
    assert levels[0] == "fine" and levels.count("fine") >= 1
    assert config.config_hash() == config.with_overrides(**{"fidelity_plan.top_share": None}).config_hash()
    assert kept.config_hash() != config.config_hash()
