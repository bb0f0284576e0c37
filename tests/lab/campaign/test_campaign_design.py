"""The design step: a design point's scenario, which points are feasible, and the campaign's Sobol
design, continued without repeats."""
from __future__ import annotations

import pytest
import torch

from closedloop.lab import campaign as steps
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
