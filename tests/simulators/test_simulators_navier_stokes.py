"""Steady Navier–Stokes room flow: incompressible, wall-respecting, steady, and not potential flow.

The physics checks compare with the potential flow of the same room (irrotational, no jet, no
recirculation) and with the analytic laminar flow in a square duct.
"""
from __future__ import annotations

import math
import time

import pytest
import torch

from closedloop.physics import Grid, divergence, open_faces
from closedloop.simulators import Scenario
from closedloop.simulators.flow import boundary_velocity, potential_flow
from closedloop.simulators.geometry import room_geometry, vent_faces
from closedloop.simulators.anderson import TIKHONOV
from closedloop.simulators.navier_stokes import NavierStokesSettings, navier_stokes_flow, strain_rate
from sim_test_scenarios import boundary_flows, room, room_data

SUPPLY = 0.25  # room.toml: x− inlet of 2 faces × 0.25 m² at 0.5 m/s


@pytest.fixture(scope="module")
def solved():
    scenario = room()
    geometry = room_geometry(scenario)
    t0 = time.perf_counter()
    flow, nu_t = navier_stokes_flow(scenario, geometry)
    seconds = time.perf_counter() - t0
    print(f"\nroom.toml {geometry.grid.shape}: {flow.iterations} iterations, residual "
          f"{flow.residual:.2e}, {seconds:.1f} s")
    return scenario, geometry, flow, nu_t, potential_flow(scenario, geometry)


def _speed(scenario: Scenario) -> float:
    return max(i.speed for i in scenario.inlets)


def _edge_curl(velocity, grid: Grid, fluid: torch.Tensor) -> torch.Tensor:
    """|ω| on interior edges whose four surrounding cells are fluid (all three orientations)."""
    h = grid.spacing
    out = []
    for a, b in ((0, 1), (0, 2), (1, 2)):
        ua, ub = velocity[a], velocity[b]
        na, nb = grid.shape[a], grid.shape[b]
        ua_in, ub_in = ua.narrow(a, 1, na - 1), ub.narrow(b, 1, nb - 1)
        curl = ((ua_in.narrow(b, 1, nb - 1) - ua_in.narrow(b, 0, nb - 1)) / h[b]
                - (ub_in.narrow(a, 1, na - 1) - ub_in.narrow(a, 0, na - 1)) / h[a])
        f = fluid
        four = (f.narrow(a, 0, na - 1).narrow(b, 0, nb - 1) & f.narrow(a, 1, na - 1).narrow(b, 0, nb - 1)
                & f.narrow(a, 0, na - 1).narrow(b, 1, nb - 1) & f.narrow(a, 1, na - 1).narrow(b, 1, nb - 1))
        out.append(curl[four].abs())
    return torch.cat(out)


# ----------------------------------------------------------------------------- constraints
def test_divergence_free_and_wall_respecting(solved):
    scenario, geometry, flow, _, _ = solved
    grid, fluid = geometry.grid, geometry.fluid
    div = divergence(flow.velocity, grid)
    scale = _speed(scenario) / min(grid.spacing)
    assert div[fluid].abs().max().item() < 1e-8 * scale
    assert torch.all(div[~fluid] == 0)
    ub = boundary_velocity(scenario, geometry)
    for a, u in enumerate(flow.velocity):
        assert tuple(u.shape) == grid.face_shape(a) and u.dtype == torch.float64
        n = grid.shape[a]
        inner_open = open_faces(fluid, grid, a).narrow(a, 1, n - 1)
        assert torch.all(u.narrow(a, 1, n - 1)[~inner_open] == 0)  # faces touching solids
        for side in (0, n):
            # walls exactly zero, vents exactly the prescribed normal velocity
            assert torch.equal(u.select(a, side), ub[a].select(a, side))
    for inlet in scenario.inlets:
        a = inlet.normal_axis
        assert torch.all(flow.velocity[a][vent_faces(inlet, geometry)].abs() == inlet.speed)


def test_inflow_equals_outflow(solved):
    _, geometry, flow, _, _ = solved
    inflow, outflow = boundary_flows(flow, geometry.grid)
    assert inflow == pytest.approx(SUPPLY, rel=1e-14)
    assert flow.supply == pytest.approx(SUPPLY, rel=1e-14)
    assert abs(inflow - outflow) <= 1e-12 * inflow


def test_converged_and_restart_changes_nothing(solved):
    scenario, geometry, flow, nu_t, _ = solved
    settings = NavierStokesSettings()
    assert 1 < flow.iterations < settings.max_iterations
    assert flow.residual <= settings.tolerance
    again, nu_again = navier_stokes_flow(scenario, geometry, initial=flow)
    assert again.iterations <= 3 and again.residual <= settings.tolerance
    change = max((x - y).abs().max().item() for x, y in zip(again.velocity, flow.velocity))
    assert change < 1e-5 * _speed(scenario)
    assert (nu_again - nu_t).abs().max().item() < 1e-4 * nu_t.max().item()


# ----------------------------------------------------------------------------- not potential flow
def test_flow_carries_vorticity_unlike_potential_flow(solved):
    scenario, geometry, flow, _, potential = solved
    h = min(geometry.grid.spacing)
    omega = _edge_curl(flow.velocity, geometry.grid, geometry.fluid)
    omega_pf = _edge_curl(potential.velocity, geometry.grid, geometry.fluid)
    assert omega.numel() > 500
    assert omega.max().item() * h / _speed(scenario) > 0.1
    assert omega.mean().item() * h / _speed(scenario) > 0.005  # rotational throughout, not in a spot
    assert omega_pf.max().item() * h / _speed(scenario) < 1e-9


def test_inlet_jet_penetrates(solved):
    """One metre into the room the jet keeps most of its speed; potential flow has spread it out."""
    scenario, geometry, flow, _, potential = solved
    inlet = scenario.inlets[0]
    assert inlet.face == "x-"
    patch = vent_faces(inlet, geometry)[0]  # (ny, nz) cells behind the inlet
    i = round(1.0 / geometry.grid.spacing[0])  # the face plane at x = 1 m
    ns = flow.velocity[0][i][patch].mean().item()
    pf = potential.velocity[0][i][patch].mean().item()
    assert ns > 0.5 * inlet.speed
    assert ns > 3 * pf


def test_recirculation(solved):
    """The jet drives a return flow: across x = 2.5 m more air goes back than the whole supply."""
    scenario, geometry, flow, _, potential = solved
    i = round(2.5 / geometry.grid.spacing[0])
    area = geometry.grid.face_area(0)
    back = -flow.velocity[0][i].clamp(max=0).sum().item() * area
    forward = flow.velocity[0][i].clamp(min=0).sum().item() * area
    assert back > 0.5 * SUPPLY
    assert forward - back == pytest.approx(SUPPLY, rel=1e-8)  # the net is still the supply
    assert potential.velocity[0][i].min().item() >= -1e-12  # potential flow never turns back here


def test_eddy_viscosity(solved):
    scenario, geometry, flow, nu_t, _ = solved
    fluid = geometry.fluid
    assert tuple(nu_t.shape) == geometry.grid.shape and nu_t.dtype == torch.float64
    assert torch.all(nu_t >= 0) and torch.all(nu_t[~fluid] == 0)
    patch = vent_faces(scenario.inlets[0], geometry)[0]
    jet = nu_t[: round(2.0 / geometry.grid.spacing[0])][:, patch]  # the first 2 m of the jet
    quiet = nu_t[fluid].median()
    assert jet.mean().item() > 5 * quiet.item()
    # bounded by the model: l_m ≤ 0.1 × the smallest room dimension, |S| ≤ a few U/h
    cap = 0.1 * min(scenario.room.size)
    assert nu_t.max().item() < cap ** 2 * 4 * _speed(scenario) / min(geometry.grid.spacing)


def test_strain_rate_of_simple_shear():
    """u_x = γ y: |S| = γ in cells away from the walls (where the zero ghost velocity enters)."""
    grid = Grid(shape=(4, 6, 3), spacing=(0.5, 0.5, 0.5))
    gamma = 0.8
    y = grid.cell_centers(1)
    ux = (gamma * y)[None, :, None].expand(*grid.face_shape(0)).clone()
    velocity = (ux, torch.zeros(grid.face_shape(1), dtype=torch.float64),
                torch.zeros(grid.face_shape(2), dtype=torch.float64))
    s = strain_rate(velocity, grid)
    assert torch.allclose(s[:, 1:-1, 1:-1], torch.full_like(s[:, 1:-1, 1:-1], gamma), rtol=1e-12)


# ----------------------------------------------------------------------------- symmetry, duct
def _variant(**fields) -> Scenario:
    data = room_data()
    data.update(obstacles=[], probes=[], **fields)
    return Scenario.model_validate(data)


def _small_room() -> Scenario:
    """4 × 3 × 3 m, vents centred in y on opposite walls (inlet high, exhaust low), no obstacles."""
    return _variant(
        room={"size": [4.0, 3.0, 3.0], "cell_size": 0.5},
        inlets=[{"face": "x-", "center": [1.5, 2.25], "size": [1.0, 0.5], "speed": 0.5}],
        exhausts=[{"face": "x+", "center": [1.5, 0.75], "size": [1.0, 0.5]}],
        source={"x": 2.0, "y": 1.5, "z": 1.5, "rate": 1.0},
    )


@pytest.fixture(scope="module")
def small():
    scenario = _small_room()
    geometry = room_geometry(scenario)
    return scenario, geometry, *navier_stokes_flow(scenario, geometry)


def test_symmetric_room_gives_mirror_symmetric_flow(small):
    """No obstacles, vents centred in y: the flow is its own mirror image across y = 1.5 m."""
    scenario, geometry, flow, nu_t = small
    assert flow.residual <= NavierStokesSettings().tolerance
    ux, uy, uz = flow.velocity
    scale = scenario.inlets[0].speed
    assert (ux - ux.flip(1)).abs().max().item() < 1e-8 * scale
    assert (uy + uy.flip(1)).abs().max().item() < 1e-8 * scale
    assert (uz - uz.flip(1)).abs().max().item() < 1e-8 * scale
    assert (nu_t - nu_t.flip(1)).abs().max().item() < 1e-8 * nu_t.max().item()
    assert uy.abs().max().item() > 0.01 * scale  # there is flow across the mirror plane to test


@pytest.mark.numerics
def test_tilted_inlet_turns_the_jet_and_mirrors():
    """An inlet tilted toward ±y carries its tangential momentum in: the jet turns that way, and the
    two tilts give mirror-image flows."""
    flows = {}
    for sign in (1.0, -1.0):
        data = _small_room().model_dump(mode="json")
        data["inlets"][0]["direction"] = [1.0, 0.5 * sign, 0.0]
        scenario = Scenario.model_validate(data)
        flows[sign], _ = navier_stokes_flow(scenario, room_geometry(scenario))
    up, down = flows[1.0].velocity, flows[-1.0].velocity
    tangential = 0.5 * 0.5 / math.hypot(1.0, 0.5)
    near = up[1][0:3, 1:6, 4]  # u_y in front of the inlet (x < 1.5 m, z = 2.25 m)
    assert near.mean().item() > 0.2 * tangential
    # Exact arithmetic mirrors exactly (plain pseudo-time: 6e-17 measured). Anderson mixing solves
    # normal equations of condition up to 1/TIKHONOV, so its weights, and the mirrored pair, differ
    # by up to ε/TIKHONOV relative to U wherever rounding is not mirror-symmetric (1.4e-9 measured
    # under AVX-512, AVX2 and scalar ATen kernels; 7.4e-9 with another CPU's MKL).
    bound = torch.finfo(torch.float64).eps / TIKHONOV * 0.5
    assert (up[0] - down[0].flip(1)).abs().max().item() < bound
    assert (up[1] + down[1].flip(1)).abs().max().item() < bound
    assert (up[2] - down[2].flip(1)).abs().max().item() < bound


@pytest.mark.numerics
def test_float32_agrees_with_float64(small):
    scenario, geometry, f64, _ = small
    f32, nu32 = navier_stokes_flow(scenario, geometry, dtype=torch.float32)
    assert all(u.dtype == torch.float32 for u in f32.velocity) and nu32.dtype == torch.float32
    assert f32.residual <= NavierStokesSettings().tolerance
    div = divergence(f32.velocity, geometry.grid)[geometry.fluid].abs().max().item()
    assert div < 1e-4 * 0.5 / 0.5  # single precision: CG stops at ~100 ε
    diff = max((a.double() - b).abs().max().item() for a, b in zip(f32.velocity, f64.velocity))
    assert diff < 2e-3 * 0.5  # both within the steady tolerance of the same fixed point


def _duct_ratio(y: float, z: float, a: float = 1.0) -> float:
    """u(y, z)/ū for laminar flow in a square duct |y|, |z| < a (Fourier series)."""
    odd = range(1, 400, 2)
    u = sum((-1) ** ((n - 1) // 2) * (1 - math.cosh(n * math.pi * z / (2 * a)) / math.cosh(n * math.pi / 2))
            * math.cos(n * math.pi * y / (2 * a)) / n ** 3 for n in odd) * 16 * a * a / math.pi ** 3
    mean = a * a / 3 * (1 - 192 / math.pi ** 5 * sum(math.tanh(n * math.pi / 2) / n ** 5 for n in odd))
    return u / mean


def test_laminar_square_duct_matches_the_analytic_profile():
    """ν = 0.1 m²/s, no eddy viscosity, Re = 2: the developed profile peaks at ≈ 2.04 × the mean
    (series solution) on the four faces nearest the axis; a uniform (potential) flow has 1."""
    scenario = _variant(
        room={"size": [4.0, 2.0, 2.0], "cell_size": 0.25},
        inlets=[{"face": "x-", "center": [1.0, 1.0], "size": [2.0, 2.0], "speed": 0.1}],
        exhausts=[{"face": "x+", "center": [1.0, 1.0], "size": [2.0, 2.0]}],
        source={"x": 1.0, "y": 1.0, "z": 1.0, "rate": 1.0},
        plane={"z_min": 0.5, "z_max": 1.5},
    )
    geometry = room_geometry(scenario)
    flow, nu_t = navier_stokes_flow(scenario, geometry, NavierStokesSettings(viscosity=0.1, mixing_length=0.0))
    assert torch.all(nu_t == 0)
    section = flow.velocity[0][8]  # x = 2 m, developed (entrance length ≈ 0.7 D)
    ratio = section[3:5, 3:5].mean().item() / section.mean().item()
    exact = _duct_ratio(0.125, 0.125)
    assert ratio == pytest.approx(exact, rel=0.06)  # second order: −4.5 % at h = 0.25, −1.3 % at h/2
    assert torch.allclose(section, section.T, rtol=1e-8)  # y ↔ z symmetry of the square duct
