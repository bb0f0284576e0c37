"""simulators.sources.SourceTerm: the switch decided at a step's midpoint, switch times as events,
stage forcings at the stages' times (moving source) or shared (static), and the emitted mass."""
from __future__ import annotations

import math

import pytest
import torch

from closedloop.simulators.geometry import room_geometry, source_weights
from closedloop.simulators.sources import SourceTerm
from sim_test_scenarios import room

TRAJECTORY = [{"t": 0.0, "x": 2.5, "y": 4.0, "z": 1.25}, {"t": 20.0, "x": 7.5, "y": 4.5, "z": 1.75}]


def _term(**source) -> tuple[SourceTerm, object]:
    sc = room(source=source)
    geometry = room_geometry(sc)
    return SourceTerm(sc, geometry, torch.float64, torch.device("cpu")), (sc, geometry)


def test_switch_at_the_midpoint_and_switch_times() -> None:
    term, _ = _term(x=2.5, y=4.0, z=1.25, rate=2.0, start=5.0, stop=9.0)
    assert not term.is_on(4.0, 1.9) and term.is_on(4.0, 2.0)  # midpoint 4.95 vs 5.0
    assert term.is_on(8.0, 1.9) and not term.is_on(8.0, 2.0)  # midpoint 8.95 vs 9.0 (stop excluded)
    assert term.switch_times(120.0) == {5.0, 9.0} and term.switch_times(8.0) == {5.0}
    always, _ = _term(x=2.5, y=4.0, z=1.25, rate=1.0)
    assert always.stop == math.inf and always.switch_times(120.0) == set()  # start 0 is not inside (0, T)


def test_emitted_mass_and_density_integrate_to_the_rate() -> None:
    term, (_, geometry) = _term(x=2.5, y=4.0, z=1.25, rate=2.0, start=5.0, stop=9.0)
    assert term.emitted(6.0, 0.5) == 1.0 and term.emitted(0.0, 0.5) == 0.0
    assert term.density(0.0).sum().item() * geometry.grid.cell_volume == pytest.approx(2.0, rel=1e-14)


def test_static_stage_forcings_share_one_field_and_off_is_passed_through() -> None:
    term, _ = _term(x=2.5, y=4.0, z=1.25, rate=2.0, start=5.0, stop=9.0)
    s0, s1 = term.stage_forcings(6.0, 0.5, (0.0, 1.0))
    assert s0 is s1 and s0 is term.density(0.0)
    zeros = torch.zeros(1)
    assert term.stage_forcings(0.0, 0.5, (0.0, 1.0)) == (None, None)
    assert term.stage_forcings(0.0, 0.5, (0.0,), off=zeros) == (zeros,)


def test_moving_forcings_are_evaluated_at_each_stage_time() -> None:
    term, (sc, geometry) = _term(trajectory=TRAJECTORY, rate=1.5)
    assert term.is_moving
    t, dt = 4.0, 3.0
    s0, s1 = term.stage_forcings(t, dt, (0.0, 1.0))
    for s, at in ((s0, t), (s1, t + dt)):
        expected = 1.5 * source_weights(sc, geometry, sc.source.position_at(at), torch.float64, "cpu")
        assert torch.equal(s, expected)
    assert not torch.equal(s0, s1)
