"""A campaign whose design cannot run is refused at load: too large at a corner, or never valid."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.lab.config import ConfigError, load_campaign_config
from tests.conftest import fast_config_text


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_a_design_corner_over_the_memory_limit_is_refused(tmp_path: Path):
    text = fast_config_text() + "max_cells = 1000\n"
    with pytest.raises(ConfigError, match=r"simulation: at source_x = 1, source_y = 0.75, inlet_speed = 0.3, "
                                          r"room.cell_size: 1,440 cells .* over simulation.max_cells = 1,000"):
        load_campaign_config(write(tmp_path, text))
    cells = fast_config_text().replace('name = "inlet_speed"\npath = "inlets.0.speed"\nlow = 0.3\nhigh = 1.5',
                                       'name = "cell"\npath = "room.cell_size"\nkind = "categorical"\n'
                                       'choices = [0.25, 0.5]')
    assert "room.cell_size" in cells
    load_campaign_config(write(tmp_path, cells + "max_cells = 12000\n"))  # 0.25 m: 11,520 cells fit
    with pytest.raises(ConfigError, match=r"cell = 0.25, room.cell_size: 11,520 cells"):
        load_campaign_config(write(tmp_path, cells + "max_cells = 11000\n"))


def test_a_design_that_never_gives_a_valid_scenario_is_refused(tmp_path: Path):
    # the source moves only inside the pillar (x 4.5–5.5, y 2.5–3.5): no point can be simulated
    text = fast_config_text().replace("low = 1.0\nhigh = 9.0", "low = 4.6\nhigh = 5.4")
    text = text.replace("low = 0.75\nhigh = 5.25", "low = 2.6\nhigh = 3.4")
    with pytest.raises(ConfigError, match=r"design: none of 64 Sobol points of the design space gives a valid "
                                          r"scenario \(64 of them fail on source, e.g. source: position .* lies inside obstacle 0"):
        load_campaign_config(write(tmp_path, text))


def test_a_design_whose_walls_cut_the_inlet_off_is_refused(tmp_path: Path):
    """A partition across the room (x 4.5–5.5, the pillar widened to every y and z) that the design
    moves only a little: the inlet's air can never reach the exhaust."""
    text = fast_config_text().replace('max = [5.5, 3.5, 3.0]', 'max = [5.5, 6.0, 3.0]')
    text = text.replace('min = [4.5, 2.5, 0.0]', 'min = [4.5, 0.0, 0.0]')
    text = text.replace('name = "inlet_speed"\npath = "inlets.0.speed"\nlow = 0.3\nhigh = 1.5',
                        'name = "wall_x"\npath = "obstacles.0.max.0"\nlow = 5.0\nhigh = 5.5')
    text = text.replace("low = 1.0\nhigh = 9.0", "low = 1.0\nhigh = 4.0")  # the source stays on the inlet's side
    scen = tmp_path / "room.toml"
    from tests.conftest import ROOM
    scen.write_text(ROOM.read_text().replace('max = [5.5, 3.5, 3.0]', 'max = [5.5, 6.0, 3.0]')
                    .replace('min = [4.5, 2.5, 0.0]', 'min = [4.5, 0.0, 0.0]'))
    text = text.replace(f'scenario = "{ROOM.as_posix()}"', f'scenario = "{scen.as_posix()}"')
    with pytest.raises(ConfigError, match=r"design: none of 64 Sobol points .* fail on inlets.0, e.g. inlets.0: "
                                          r"the air it blows in cannot reach any exhaust"):
        load_campaign_config(write(tmp_path, text))


def test_each_check_takes_the_sections_it_reads_and_names_the_field():
    from closedloop.lab.design_checks import corners_fit, design_fits_scenario, some_point_runs
    from tests.conftest import SMOKE

    config = load_campaign_config(SMOKE)
    scenario, design = config.scenario, config.design
    design_fits_scenario(scenario, design)
    some_point_runs(scenario, design, seed=config.seed)
    corners_fit(scenario, design, config.simulation)
    wide = config.with_overrides(**{"design.parameters.1.low": -0.5}).design  # a copy: not preflighted
    with pytest.raises(ValueError, match=r"^design.parameters.1 \(source_y\): at its low bound -0.5 "):
        design_fits_scenario(scenario, wide)
    with pytest.raises(ValueError, match=r"^design.parameters.0.path: "):
        design_fits_scenario(scenario, config.with_overrides(**{"design.parameters.0.path": "source.w"}).design)
    small = config.simulation.model_copy(update={"max_cells": 100})
    with pytest.raises(ValueError, match=r"^simulation: at source_x = 1, source_y = 0.75, inlet_speed = 0.3, "):
        corners_fit(scenario, design, small)
