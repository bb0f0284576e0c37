"""Fidelity levels in the campaign steps: a case's level, its id, the surrogate's view, the mix."""
from __future__ import annotations

import json

import pytest
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.campaign.design import case_id_for, scenario_for
from closedloop.lab.campaign.fidelity import level_counts, level_of, spend_by_level, surrogate_view, with_level
from closedloop.lab.store import CampaignStore
from closedloop.simulators.fidelity import band_weights, restricted_weights
from tests.lab.campaign.mf_config import mf_config


@pytest.fixture(scope="module")
def round0(tmp_path_factory):
    """Round 0 of the two-level campaign, simulated: 3 coarse + 1 fine cases."""
    tmp = tmp_path_factory.mktemp("mf")
    config = mf_config(tmp)
    store = CampaignStore(tmp / "camp")
    params, _ = steps.round_proposals(config, store, 0)
    steps.record_outcomes(store, [steps.run_case(config, store, p) for p in params])
    return config, store, params


def test_round0_runs_the_planned_levels_and_records_level_and_cost(round0):
    config, store, params = round0
    assert [p["fidelity"] for p in params] == ["coarse", "coarse", "coarse", "fine"]
    ledger = store.read_ledger()
    assert ledger["fidelity"].tolist() == ["coarse", "coarse", "coarse", "fine"]
    assert (ledger["cpu_seconds"] > 0).all() and (ledger["status"] == "done").all()
    fine = store.read_case(ledger["case_id"].iloc[3])
    assert fine.scenario.room.cell_size == 0.25 and fine.plane.shape[1:] == (40, 24)
    assert fine.scenario.numerics.advection == "tvd"
    coarse = store.read_case(ledger["case_id"].iloc[0])
    assert coarse.scenario.numerics.advection == "upwind" and coarse.plane.shape[1:] == (20, 12)
    by = spend_by_level(config, ledger)
    assert by["coarse"]["cases"] == 3 and by["fine"]["cases"] == 1
    assert by["fine"]["cpu_seconds"] > by["coarse"]["cpu_seconds"] / 3  # one fine case costs more than a coarse one


def test_a_point_at_two_levels_is_two_cases(round0):
    config, _, params = round0
    point = {k: v for k, v in params[0].items() if k != "fidelity"}
    ids = {case_id_for(config, with_level(point, lv.name)) for lv in config.fidelity}
    assert len(ids) == 2 and case_id_for(config, point) not in ids
    assert level_of(config, scenario_for(config, with_level(point, "fine"))) == "fine"
    with pytest.raises(ValueError, match="fidelity: unknown level 'medium'"):
        scenario_for(config, with_level(point, "medium"))


def test_surrogate_view_restricts_fine_planes_conservatively_and_sets_levels(round0):
    config, store, _ = round0
    ledger = store.read_ledger()
    cases = steps.load_cases(store, ledger["case_id"].tolist())
    scenarios, forcing, target = surrogate_view(config, cases)
    assert forcing.fidelity.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert target.shape == (4, 4, 20, 12) and all(s.room.cell_size == 0.5 for s in scenarios)
    assert all(s.numerics == config.scenario.numerics for s in scenarios)
    fine = cases[3]
    w = band_weights(fine.scenario)
    content = (fine.plane.to(torch.float64) * w).sum(dim=(1, 2)) * 0.25 ** 2
    torch.testing.assert_close((target[3] * restricted_weights(w, 2)).sum(dim=(1, 2)) * 0.25, content, rtol=1e-12, atol=0)
    torch.testing.assert_close(target[0], cases[0].plane.to(torch.float64))


def test_validation_predicts_each_case_at_its_level_then_training_learns_from_both(round0):
    config, store, _ = round0
    rows = steps.validate_cases(config, store, 0)
    assert len(rows) == 4 and all(r["validated_by"] == "initial" and r["rel_l2"] > 0 for r in rows)
    report = steps.retrain_round(config, store, 0, steps.training_set(store.read_ledger(), 0))
    assert report.best_loss < report.initial_loss
    model = steps.model_for_round(config, store, 0, [])
    assert model.spec.fidelity_levels == 2 and model.fidelity_shift.requires_grad


def test_level_counts_follow_the_mix(round0):
    config = round0[0]
    assert level_counts(config, 6, {"coarse": 2, "fine": 1}) == ["coarse"] * 4 + ["fine"] * 2
    assert level_counts(config, 4, {"coarse": 2, "fine": 1}).count("fine") == 1
    assert level_counts(config, 3, {}) == ["fine"] * 3  # no mix: the top level
    json.dumps(level_counts(config, 2, {"coarse": 1}))


def test_round_report_shows_spend_by_level_and_error_against_compute(round0):
    from closedloop.lab.campaign.fidelity import fidelity_lines
    config, store, _ = round0
    text = "\n".join(fidelity_lines(config, store.read_ledger(), 0))
    assert "This round by level: coarse 3, fine 1" in text
    assert "| coarse | 3 |" in text and "| fine | 1 |" in text and "| 0 |" in text
