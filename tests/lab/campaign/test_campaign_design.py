"""The design step: a design point's scenario, which points are feasible, and the campaign's Sobol
design, continued without repeats."""
from __future__ import annotations

import json

import pytest
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.campaign.design import case_id_for, proposed_points
from closedloop.lab.config import load_campaign_config
from tests.lab.conftest import SMOKE_TOML


@pytest.fixture(scope="module")
def config():
    return load_campaign_config(SMOKE_TOML)


def test_a_design_point_sets_its_parameters_on_the_base_scenario(config):
    scenario = steps.scenario_for(config, {"source_x": 2.0, "source_y": 1.0, "inlet_speed": 0.5})
    assert (scenario.source.x, scenario.source.y, scenario.inlets[0].speed) == (2.0, 1.0, 0.5)
    assert scenario.room == config.scenario.room and scenario.case_id() != config.scenario.case_id()


def test_a_source_inside_the_pillar_is_infeasible(config):
    x = torch.tensor([[5.0, 3.0, 0.5], [2.0, 1.0, 0.5]], dtype=torch.float64)  # pillar: x, y ∈ [4.5, 5.5] × [2.5, 3.5]
    assert steps.feasible_mask(config, x).tolist() == [False, True]
    with pytest.raises(ValueError):
        steps.scenario_for(config, {"source_x": 5.0, "source_y": 3.0, "inlet_speed": 0.5})


def test_the_sobol_design_continues_where_it_stopped(config):
    first, position = steps.feasible_sobol(config, 4, 0)
    more, _ = steps.feasible_sobol(config, 3, position)
    whole, _ = steps.feasible_sobol(config, 7, 0)
    assert torch.equal(torch.cat([first, more]), whole) and position >= 4
    assert steps.feasible_mask(config, whole).all() and config.design.space().contains(whole).all()


def test_candidate_problems_batch_the_design_points(config):
    x, _ = steps.feasible_sobol(config, 2, 0)
    scenarios, forcing, problem = steps.candidate_problems(config, x)
    assert [s.case_id() for s in scenarios] == [steps.scenario_for(config, p).case_id()
                                                for p in config.design.space().as_dicts(x)]
    assert forcing.batch_size == 2 and problem.n_steps == config.scenario.time.n_outputs


@pytest.mark.numerics
def test_a_proposal_perturbed_in_its_last_bits_keeps_its_case_id(config):
    """Proposals go onto the design space's resolution grid before they become cases: the same
    point from another CPU (other last bits) is the same case; the ledger's JSON round trip (resume)
    gives the same id again."""
    x, _ = steps.feasible_sobol(config, 6, 0)
    nudged = x * (1 + 3 * torch.finfo(torch.float64).eps)
    assert not torch.equal(nudged, x)
    assert case_id_for(config, {"source_x": float(x[0, 0]), "source_y": float(x[0, 1]),
                                "inlet_speed": float(x[0, 2])}) != case_id_for(
        config, {"source_x": float(nudged[0, 0]), "source_y": float(nudged[0, 1]), "inlet_speed": float(nudged[0, 2])})
    mine, theirs = proposed_points(config, x), proposed_points(config, nudged)
    assert mine == theirs
    ids = [case_id_for(config, p) for p in mine]
    assert len(set(ids)) == len(ids)
    assert [case_id_for(config, json.loads(json.dumps(p, sort_keys=True))) for p in mine] == ids
    assert config.design.space().contains(config.design.space().as_tensor(mine), tol=0).all()


@pytest.mark.numerics
def test_a_feasible_point_whose_grid_neighbour_is_not_is_kept(config):
    """Source 3 µm left of the pillar (x ∈ [4.5, 5.5], inclusive): the nearest grid point (δ = 8 µm)
    is its face, inside the pillar, so the proposal stays as the optimiser gave it."""
    x = torch.tensor([[4.5 - 3e-6, 3.0, 0.5], [2.0 + 1e-9, 1.0, 0.5]], dtype=torch.float64)
    assert steps.feasible_mask(config, x).all()
    assert not steps.feasible_mask(config, config.design.space().quantize(x))[0]
    points = proposed_points(config, x)
    assert points[0] == {"source_x": 4.5 - 3e-6, "source_y": 3.0, "inlet_speed": 0.5}
    assert points[1]["source_x"] == 2.0
