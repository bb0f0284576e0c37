"""Steady potential flow of a room: incompressible, wall-respecting, balanced, irrotational."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics import divergence, open_faces
from closedloop.simulators import Scenario
from closedloop.simulators.flow import potential_flow
from closedloop.simulators.geometry import room_geometry, vent_faces
from closedloop.simulators.scenario import Obstacle
from sim_test_scenarios import boundary_flows, cluttered, room, room_data

# supply volume flow, computed by hand from the vent layouts (open faces × 0.25 m² × speed):
#   room:      x− inlet, 2 faces, 0.5 m/s                                   → 0.25 m³/s
#   cluttered: x− inlet with one of its 2 faces blocked by the duct, 0.5 m/s → 0.125
#              + y− inlet, 2 faces, 0.8 m/s                                  → 0.4
CASES = {"room": (room, 0.25), "cluttered": (cluttered, 0.525)}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    make, supply = CASES[request.param]
    scenario = make()
    geometry = room_geometry(scenario)
    flow = potential_flow(scenario, geometry)
    return scenario, geometry, flow, supply


def _vent_union(vents, geometry, axis):
    mask = torch.zeros(geometry.grid.face_shape(axis), dtype=torch.bool)
    for v in vents:
        if v.normal_axis == axis:
            mask |= vent_faces(v, geometry)
    return mask


def test_divergence_free_in_fluid_cells(case):
    scenario, geometry, flow, _ = case
    grid = geometry.grid
    div = divergence(flow.velocity, grid)
    scale = max(i.speed for i in scenario.inlets) / scenario.room.cell_size
    worst = div[geometry.fluid].abs().max().item() / scale
    assert worst < 1e-9, worst
    assert torch.all(div[~geometry.fluid] == 0)  # solid cells carry no velocity at all
    assert flow.residual <= 1e-11


def test_no_velocity_through_walls_and_solids(case):
    scenario, geometry, flow, _ = case
    grid, fluid = geometry.grid, geometry.fluid
    vents = list(scenario.inlets) + list(scenario.exhausts)
    for a, u in enumerate(flow.velocity):
        assert tuple(u.shape) == grid.face_shape(a) and u.dtype == torch.float64
        n = grid.shape[a]
        inner_open = open_faces(fluid, grid, a).narrow(a, 1, n - 1)
        inner = u.narrow(a, 1, n - 1)
        assert torch.all(inner[~inner_open] == 0)  # faces touching a solid: exactly zero
        vent = _vent_union(vents, geometry, a)
        for side in (0, n):
            face_u = u.select(a, side)
            assert torch.all(face_u[~vent.select(a, side)] == 0)  # walls: exactly zero
            cell = fluid.select(a, 0 if side == 0 else n - 1)
            assert not torch.any(vent.select(a, side) & ~cell)  # no vent face in front of a solid
    # the flow is far from trivial inside the room
    assert max(u.abs().max().item() for u in flow.velocity) >= max(i.speed for i in scenario.inlets)


def test_vent_face_velocities(case):
    scenario, geometry, flow, supply = case
    grid = geometry.grid
    for inlet in scenario.inlets:
        a = inlet.normal_axis
        mask = vent_faces(inlet, geometry)
        inward = 1.0 if inlet.face[1] == "-" else -1.0
        assert torch.all(flow.velocity[a][mask] == inward * inlet.speed)
    area = sum(vent_faces(e, geometry).sum().item() * grid.face_area(e.normal_axis)
               for e in scenario.exhausts)
    for ex in scenario.exhausts:
        a = ex.normal_axis
        outward = -1.0 if ex.face[1] == "-" else 1.0
        vals = flow.velocity[a][vent_faces(ex, geometry)]
        assert torch.allclose(vals, torch.full_like(vals, outward * supply / area), rtol=1e-14)


def test_inflow_equals_outflow(case):
    scenario, geometry, flow, supply = case
    inflow, outflow = boundary_flows(flow, geometry.grid)
    assert inflow == pytest.approx(supply, rel=1e-14)
    assert flow.supply == pytest.approx(supply, rel=1e-14)
    assert abs(inflow - outflow) <= 1e-12 * inflow


def test_flow_is_irrotational_away_from_solids(case):
    """u = ∇φ on open interior faces: the discrete curl vanishes around every all-fluid edge."""
    _, geometry, flow, _ = case
    grid, fluid = geometry.grid, geometry.fluid
    h = grid.spacing
    worst, checked = 0.0, 0
    for a, b in ((0, 1), (0, 2), (1, 2)):
        ua, ub = flow.velocity[a], flow.velocity[b]
        # interior edges along the third axis: four cells around each
        na, nb = grid.shape[a], grid.shape[b]
        ua_in = ua.narrow(a, 1, na - 1)  # faces normal to a, interior along a
        ub_in = ub.narrow(b, 1, nb - 1)
        curl = ((ua_in.narrow(b, 1, nb - 1) - ua_in.narrow(b, 0, nb - 1)) / h[b]
                - (ub_in.narrow(a, 1, na - 1) - ub_in.narrow(a, 0, na - 1)) / h[a])
        f = fluid
        four = (f.narrow(a, 0, na - 1).narrow(b, 0, nb - 1) & f.narrow(a, 1, na - 1).narrow(b, 0, nb - 1)
                & f.narrow(a, 0, na - 1).narrow(b, 1, nb - 1) & f.narrow(a, 1, na - 1).narrow(b, 1, nb - 1))
        worst = max(worst, curl[four].abs().max().item())
        checked += int(four.sum())
    scale = max(u.abs().max().item() for u in flow.velocity) / min(h)
    assert checked > 500
    assert worst < 1e-10 * scale


def test_inlet_behind_a_solid_is_rejected():
    data = room_data()
    block = {"name": "block", "min": [0.0, 0.5, 1.5], "max": [1.0, 2.5, 3.0]}
    data["obstacles"].append(block)
    # refused when the scenario is loaded (simulators/scenario.vent_coverage) ...
    with pytest.raises(ValueError, match=r"inlets\.0: its opening on x- is covered by obstacles"):
        Scenario.model_validate(data)
    # ... and, should one get past validation, by the flow solver too
    scenario = Scenario.model_validate(room_data())
    scenario = scenario.model_copy(update={"obstacles": [*scenario.obstacles, Obstacle(**block)]})
    with pytest.raises(ValueError, match=r"inlets\.0"):
        potential_flow(scenario, room_geometry(scenario))


def test_inlet_cut_off_from_every_exhaust_raises():
    data = room_data()
    data["room"] = {"size": [3.0, 2.0, 1.0], "cell_size": 0.5}
    data["obstacles"] = [{"name": "wall", "min": [1.5, 0.0, 0.0], "max": [2.0, 2.0, 1.0]}]
    data["inlets"] = [{"face": "x-", "center": [1.0, 0.5], "size": [1.0, 0.5], "speed": 0.5}]
    data["exhausts"] = [{"face": "x+", "center": [1.0, 0.5], "size": [1.0, 0.5]}]
    data["source"] = {"x": 0.75, "y": 1.0, "z": 0.5, "rate": 1.0}
    data["plane"] = {"z_min": 0.0, "z_max": 1.0}
    data["probes"] = []
    scenario = Scenario.model_validate(data)
    # detected up front from the connected fluid regions, before any CG iteration
    with pytest.raises(ValueError, match="cut off a fluid pocket"):
        potential_flow(scenario, room_geometry(scenario))
