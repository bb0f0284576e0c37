"""What a simulation will cost, from the scenario alone; too large is refused before allocation."""
from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from closedloop.cli import app
from closedloop.simulators import load_scenario, simulate
from closedloop.simulators.budget import BASE_BYTES, ScenarioTooLarge, check_size, estimate, machine_memory_bytes
from tests.conftest import ROOM


def huge():
    """A 10 m cube at 1 cm cells: 10⁹ cells."""
    return load_scenario(ROOM).with_parameters({"room.size": [10.0, 10.0, 10.0], "room.cell_size": 0.01})


def test_estimate_counts_cells_and_steps_and_scales_with_precision():
    room = load_scenario(ROOM)
    est = estimate(room)
    assert est.shape == (20, 12, 6) and est.cells == 1440
    assert est.memory_bytes == BASE_BYTES + 1440 * 400
    assert estimate(room, torch.float32).memory_bytes == BASE_BYTES + 1440 * 200
    # the step estimate is the order of the real one (room.toml at 0.5 m cells: Δt 0.37 s measured under
    # Heun, three times that under the default SSPRK(4,2), whose SSP coefficient is 3)
    heun = estimate(room.with_parameters({"numerics.stages": 2}))
    assert 0.3 < room.time.horizon / heun.steps < 1.0
    assert 0.9 < room.time.horizon / est.steps < 3.0 and est.seconds == pytest.approx(heun.seconds * 2 / 3, rel=0.03)
    fine = estimate(room.with_parameters({"room.cell_size": 0.25}))
    assert fine.cells == 8 * est.cells and fine.steps > 2 * est.steps


def test_too_large_is_refused_with_the_numbers(monkeypatch):
    with pytest.raises(ScenarioTooLarge, match=r"^room.cell_size: 1,000,000,000 cells \(1000 × 1000 × 1000\) need "
                                               r"about 373 GiB .* over the limit of .* GiB \(half of this machine"):
        check_size(huge())
    with pytest.raises(ScenarioTooLarge, match=r"over simulation.max_cells = 1,000$"):
        check_size(load_scenario(ROOM), max_cells=1000)
    with pytest.raises(ScenarioTooLarge, match=r"over the limit of 0.01 GiB \(simulation.max_memory_gb\)"):
        check_size(load_scenario(ROOM), max_memory_gb=0.01)
    assert check_size(load_scenario(ROOM)).cells == 1440
    assert machine_memory_bytes() > 2 ** 30


def test_simulate_refuses_before_allocating(monkeypatch):
    def no_geometry(*args, **kwargs):
        raise AssertionError("allocated before the size check")

    monkeypatch.setattr("closedloop.simulators.reference.room_geometry", no_geometry)
    with pytest.raises(ScenarioTooLarge):
        simulate(huge(), device="cpu")


def test_cli_simulate_exits_2_naming_the_field(tmp_path):
    scen = tmp_path / "cube.toml"
    text = ROOM.read_text().replace("size = [10.0, 6.0, 3.0]", "size = [10.0, 10.0, 10.0]")
    scen.write_text(text.replace("cell_size = 0.5", "cell_size = 0.01"))
    result = CliRunner().invoke(app, ["simulate", str(scen), "--out", str(tmp_path / "o")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "room.cell_size: 1,000,000,000 cells" in text and "GiB" in text and "Traceback" not in text
    assert not (tmp_path / "o").exists()
    assert math.isfinite(estimate(huge()).seconds)
