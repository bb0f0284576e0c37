"""``[design]``: parameters of each kind, their design space, and bad tables refused by field name."""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from closedloop.lab import campaign as steps
from closedloop.lab.config import load_campaign_config
from closedloop.lab.design_config import Design, DesignParameter
from tests.lab.planner_ledgers import SMOKE


def parameters() -> list[DesignParameter]:
    return [DesignParameter(name="x", path="source.x", low=1.0, high=9.0),
            DesignParameter(name="exhaust_y", path="exhausts.0.center.0", kind="integer", low=1.0, high=5.0),
            DesignParameter(name="release", path="source.start", kind="categorical", choices=[0.0, 30.0, 60.0])]


def test_each_kind_has_its_bounds_extremes_and_scenario_values():
    x, whole, release = parameters()
    assert (x.bounds, whole.bounds, release.bounds) == ((1.0, 9.0), (1.0, 5.0), (0.0, 2.0))
    assert x.extremes() == [("low bound", 1.0), ("high bound", 9.0)]
    assert release.extremes() == [("choice 0", 0.0), ("choice 1", 30.0), ("choice 2", 60.0)]
    assert (x.scenario_value(2.4), whole.scenario_value(2.6), release.scenario_value(1.2)) == (2.4, 3.0, 30.0)


def test_the_design_space_and_what_moves_the_geometry():
    design = Design(parameters=parameters())
    space = design.space()
    assert space.names == ("x", "exhaust_y", "release") and space.integer_mask.tolist() == [False, True, True]
    assert design.moves_geometry()  # an exhaust moves
    assert not Design(parameters=parameters()[:1]).moves_geometry()
    assert not Design(parameters=[DesignParameter(name="v", path="inlets.0.speed", low=0.3, high=1.5)]).moves_geometry()
    assert design.scenario_values({"x": 2.0, "release": 2.0}) == {"source.x": 2.0, "source.start": 60.0}


@pytest.mark.parametrize("fields, needle", [
    ({"low": 9.0, "high": 1.0}, "bounds reversed"),
    ({"kind": "integer", "low": 1.5, "high": 4.0}, "whole bounds"),
    ({"kind": "categorical"}, "choices: a categorical parameter needs at least 2 choices"),
    ({"kind": "categorical", "low": None, "high": None, "choices": [1.0, 1.0]}, "choices: must be distinct"),
    ({"choices": [1.0, 2.0]}, "choices: only for kind = 'categorical'"),
    ({"high": float("nan")}, "high"),
    ({"low": None}, "low and high: required"),
    ({"step": 0.5}, "step"),
])
def test_a_bad_parameter_is_refused_naming_the_field(fields, needle):
    with pytest.raises(ValidationError, match=needle):
        DesignParameter(**{"name": "x", "path": "source.x", "low": 1.0, "high": 9.0, **fields})


def test_names_and_paths_are_unique():
    x = parameters()[0]
    with pytest.raises(ValidationError, match="parameter names must be unique"):
        Design(parameters=[x, x.model_copy(update={"path": "source.y"})])
    with pytest.raises(ValidationError, match="parameter paths must be unique"):
        Design(parameters=[x, x.model_copy(update={"name": "y"})])
    with pytest.raises(ValidationError, match="parameters"):
        Design(parameters=[])


def test_config_strategy_and_mixed_parameters(tmp_path):
    text = SMOKE.read_text().replace('strategy = "variance"', 'strategy = "error"')
    text = text.replace('[budget]', '''[[design.parameters]]
name = "release"
path = "source.start"
kind = "categorical"
choices = [0.0, 30.0, 60.0]

[[design.parameters]]
name = "exhaust_y"
path = "exhausts.0.center.0"
kind = "integer"
low = 1.0
high = 5.0

[budget]''')
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "room.toml").write_text((SMOKE.parent / "scenarios" / "room.toml").read_text())
    (tmp_path / "c.toml").write_text(text)
    cfg = load_campaign_config(tmp_path / "c.toml")
    space = cfg.design.space()
    assert cfg.planner.strategy == "error"
    assert space.integer_mask.tolist() == [False, False, False, True, True]
    assert space.bounds()[:, 3].tolist() == [0.0, 2.0]  # categorical: the index of the choice
    sc = steps.scenario_for(cfg, {"source_x": 2.0, "source_y": 1.0, "inlet_speed": 0.5, "release": 2.0,
                                "exhaust_y": 3.0})
    assert sc.source.start == 60.0 and sc.exhausts[0].center[0] == 3.0
    x, _ = steps.feasible_sobol(cfg, 8, 0)
    assert space.contains(x).all() and torch.equal(x[:, 3:], x[:, 3:].round())
