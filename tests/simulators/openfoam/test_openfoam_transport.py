"""The transport case's plan: the Courant-limited step lands on outputs, source windows never overlap
(no double emission where a moving source's segments join) and emit exactly rate × time, and the
source's cells carry the reference's weights."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from closedloop.simulators.geometry import room_geometry, source_weights
from closedloop.simulators.openfoam.settings import OpenFOAMSettings
from closedloop.simulators.openfoam.transport import Segment, TransportPlan, segments, time_step, weight_groups
from openfoam_cases import small_room
from sim_test_scenarios import MOVING


def openfoam_active(plan: TransportPlan, n: int) -> list[int]:
    """The segments OpenFOAM switches on for the step ending at step n: timeStart ≤ t ≤ timeStart + duration
    (fv::option's rule), t summed step by step as OpenFOAM's Time does (round-off included)."""
    t = 0.0
    for _ in range(n):
        t += plan.dt
    out = []
    for i, s in enumerate(plan.segments):
        start, duration = (s.first + 0.5) * plan.dt, (s.last - s.first - 0.25) * plan.dt  # as transport writes them
        if start <= t <= start + duration:
            out.append(i)
    return out


def plan_for(scenario, settings: OpenFOAMSettings | None = None) -> TransportPlan:
    settings = settings or OpenFOAMSettings()
    dt, per = time_step(scenario, settings, np.array([[0.5, 0.1, 0.0]]))
    steps = per * scenario.time.n_outputs
    return TransportPlan(dt, steps, per, segments(scenario, settings, dt, steps), 0)


def test_the_step_keeps_the_courant_number_and_lands_on_outputs():
    scenario = small_room()  # 0.5 m cells, outputs every 10 s
    dt, per = time_step(scenario, OpenFOAMSettings(max_courant=0.5), np.array([[0.5, -0.25, 0.0], [0.1, 0, 0]]))
    assert per * dt == pytest.approx(10.0) and dt * (0.5 / 0.5 + 0.25 / 0.5) <= 0.5 + 1e-12
    assert (per - 1) and 10.0 / (per - 1) * 1.5 > 0.5  # the largest such step
    assert time_step(scenario, OpenFOAMSettings(), np.zeros((3, 3))) == (10.0, 1)


def test_a_moving_source_emits_once_per_step_and_rate_times_time():
    scenario = small_room(source={**MOVING, "start": 5.0, "stop": 55.0})  # moves 0–60 s at ≈ 0.12 m/s
    plan = plan_for(scenario)
    assert len(plan.segments) > 5
    for a, b in zip(plan.segments, plan.segments[1:]):
        assert a.last == b.first  # contiguous, whole steps
    active = [openfoam_active(plan, n) for n in range(1, plan.steps + 1)]
    assert max(len(a) for a in active) == 1  # never two windows in one step: no double emission at joins
    on = [bool(a) for a in active]
    assert on == [plan.emitting(n) for n in range(1, plan.steps + 1)]  # our bookkeeping = OpenFOAM's rule
    emitted = scenario.source.rate * plan.dt * sum(on)
    assert emitted == pytest.approx(scenario.source.rate * (55.0 - 5.0), rel=1e-12)
    step = OpenFOAMSettings().moving_source_step * 0.5
    for s in plan.segments[:-1]:
        start, end = (scenario.source.position_at(t * plan.dt) for t in (s.first, s.last))
        assert math.dist(start, end) <= step + 1e-9  # each segment covers at most half a cell of the path
        assert s.position == pytest.approx(scenario.source.position_at(0.5 * (s.first + s.last) * plan.dt))


def test_a_static_window_snaps_to_the_steps():
    scenario = small_room(source={"x": 2.5, "y": 4.0, "z": 1.25, "rate": 2.0, "start": 10.0, "stop": 30.0})
    plan = plan_for(scenario)
    assert plan.segments == [Segment(round(10.0 / plan.dt), round(30.0 / plan.dt), (2.5, 4.0, 1.25))]
    on = [n for n in range(1, plan.steps + 1) if openfoam_active(plan, n)]
    assert on[0] * plan.dt == pytest.approx(10.0 + plan.dt) and on[-1] * plan.dt == pytest.approx(30.0)


@pytest.mark.parametrize("source", [
    {"x": 2.5, "y": 4.0, "z": 1.25, "rate": 1.0},  # a one-cell box over 4 half cells: one group of 4
    {"x": 2.3, "y": 4.1, "z": 1.2, "rate": 1.0, "shape": "gaussian", "sigma": 0.4},
])
def test_source_cells_carry_the_reference_weights(source):
    scenario = small_room(source=source)
    geometry = room_geometry(scenario)
    w = (source_weights(scenario, geometry, scenario.source.position, torch.float64)
         * geometry.grid.cell_volume).reshape(-1).numpy()
    groups = weight_groups(w, 32)
    assert sum(share for _, share in groups) == pytest.approx(1.0, abs=1e-12)  # the emission is exactly q
    cells = np.concatenate([c for c, _ in groups])
    assert np.array_equal(np.sort(cells), np.nonzero(w > 0)[0])  # every source cell, once
    spread = np.zeros_like(w)
    for c, share in groups:
        spread[c] = share / c.size
    if scenario.source.shape == "box":
        assert len(groups) == 1 and groups[0][0].size == 4 and np.allclose(spread, w, atol=1e-15)
    else:  # binned into 32 groups: the same centre of mass, to a small fraction of a cell
        centres = np.stack(np.unravel_index(np.arange(w.size), geometry.grid.shape), 1) + 0.5
        assert np.abs((spread - w) @ centres).max() < 0.02
