"""Conservation properties of the finite-volume operators in a closed box (2D and 3D, float64)."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics import (advect_upwind, boundary_net_flux, boundary_outflow, diffuse,
                                diffusive_flux, divergence, face_diffusivity, forward_euler, heun,
                                open_faces, stable_time_step, transport_rate)
from fv_test_fields import F64, grid_for, random_solid, stream_velocity, touching

N_STEPS = 200


def _setup(ndim: int, seed: int, solid_fraction: float = 0.0):
    gen = torch.Generator().manual_seed(seed)
    grid = grid_for(ndim)
    solid = (random_solid(grid.shape, solid_fraction, gen) if solid_fraction > 0
             else torch.zeros(grid.shape, dtype=torch.bool))
    fluid = ~solid
    vel = stream_velocity(grid, gen, amplitude=0.3, solid=solid)
    diff = face_diffusivity(0.05, fluid, grid)
    c0 = (0.5 + torch.rand(grid.shape, generator=gen, dtype=F64)) * fluid
    return grid, fluid, vel, diff, c0


@pytest.mark.parametrize("ndim", [2, 3])
def test_stream_function_velocity_is_divergence_free_and_closed(ndim):
    grid, _, vel, _, _ = _setup(ndim, seed=1)
    div = divergence(vel, grid)
    scale = max(u.abs().max().item() for u in vel) / min(grid.spacing)
    assert scale > 0.1  # a non-trivial flow
    assert div.abs().max().item() < 1e-13 * scale
    for a, u in enumerate(vel):
        assert torch.all(u.select(a, 0) == 0) and torch.all(u.select(a, grid.shape[a]) == 0)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("terms", ["advection", "diffusion", "both"])
@pytest.mark.parametrize("stepper", [forward_euler, heun], ids=["euler", "heun"])
def test_total_mass_conserved_in_closed_box(ndim, terms, stepper):
    grid, _, vel, diff, c0 = _setup(ndim, seed=10 + ndim)
    zero_vel = tuple(torch.zeros_like(u) for u in vel)
    velocity = vel if terms in ("advection", "both") else zero_vel
    diffusivities = diff if terms in ("diffusion", "both") else None
    dt = stable_time_step(velocity if terms != "diffusion" else None, diffusivities, grid, safety=0.9)

    def rate(c):
        return transport_rate(c, velocity, diffusivities, None, grid)

    c = c0.clone()
    m0 = c0.sum().item() * grid.cell_volume
    worst = 0.0
    for _ in range(N_STEPS):
        c = stepper(rate, c, dt)
        worst = max(worst, abs(c.sum().item() * grid.cell_volume - m0) / m0)
    assert worst < 1e-13, f"relative mass drift {worst:.2e}"
    # the field really evolved (otherwise conservation would be trivial)
    assert (c - c0).abs().max().item() > 0.05 * (c0.max() - c0.min()).item()


@pytest.mark.parametrize("ndim", [2, 3])
def test_no_flux_into_solid_cells(ndim):
    grid, fluid, vel, diff, c0 = _setup(ndim, seed=20 + ndim, solid_fraction=0.2)
    solid = ~fluid
    assert solid.sum() >= 5 and fluid.sum() >= 0.6 * fluid.numel()
    # the flow is non-trivial, and zero on every face that touches a solid
    assert max(u.abs().max().item() for u in vel) > 0.1
    for a, u in enumerate(vel):
        touches = touching(solid, (a,))
        assert torch.all(u[touches] == 0)
    # face diffusivities are closed on faces that touch a solid and on the box boundary
    for a, d in enumerate(diff):
        assert torch.equal(d != 0, open_faces(fluid, grid, a))
    assert torch.all(c0[solid] == 0)

    dt = stable_time_step(vel, diff, grid, safety=0.9)
    c = c0.clone()
    m0 = c0.sum().item()
    for _ in range(N_STEPS):
        c = forward_euler(lambda x: transport_rate(x, vel, diff, None, grid), c, dt)
        assert torch.all(c[solid] == 0)  # exactly: no flux reaches a solid cell
    assert abs(c.sum().item() - m0) / m0 < 1e-13
    assert (c - c0)[fluid].abs().max().item() > 0.05


@pytest.mark.parametrize("ndim", [2, 3])
def test_open_box_mass_change_equals_boundary_outflow(ndim):
    """With a through-flow (inlet on x−, outlet on x+), d/dt ∫c = −(net outflow), per the docstring."""
    gen = torch.Generator().manual_seed(40 + ndim)
    grid = grid_for(ndim)
    vel = list(stream_velocity(grid, gen, amplitude=0.2))
    # add a uniform plug flow along x: divergence-free, enters at x−, leaves at x+
    vel[0] = vel[0] + 0.7
    c = 0.2 + torch.rand(grid.shape, generator=gen, dtype=F64)
    for inflow in (0.0, 0.3):
        rate = advect_upwind(c, vel, grid, inflow_value=inflow)
        out = boundary_outflow(c, vel, grid, inflow_value=inflow)
        assert torch.allclose(rate.sum() * grid.cell_volume, -out, rtol=1e-12, atol=1e-13)
    # with clean inflow the net outflow is the upwind (last-cell) concentration times the plug speed
    last = c.select(0, grid.shape[0] - 1)
    expected = (0.7 * last).sum() * grid.face_area(0)
    assert torch.allclose(boundary_outflow(c, vel, grid), expected, rtol=1e-12)
    # diffusion never crosses the box boundary
    diff = face_diffusivity(0.1, torch.ones(grid.shape, dtype=torch.bool), grid)
    dflux = [diffusive_flux(c, d, grid, a) for a, d in enumerate(diff)]
    assert boundary_net_flux(dflux, grid).abs().item() == 0.0
    assert abs(diffuse(c, diff, grid).sum().item()) < 1e-12


def test_source_term_adds_exactly_its_integral():
    grid = grid_for(2)
    gen = torch.Generator().manual_seed(5)
    vel = stream_velocity(grid, gen)
    diff = face_diffusivity(0.05, torch.ones(grid.shape, dtype=torch.bool), grid)
    c = torch.rand(grid.shape, generator=gen, dtype=F64)
    s = torch.rand(grid.shape, generator=gen, dtype=F64)
    r0 = transport_rate(c, vel, diff, None, grid)
    r1 = transport_rate(c, vel, diff, s, grid)
    assert torch.allclose(r1 - r0, s, rtol=0, atol=1e-14)
    assert abs(r1.sum().item() - s.sum().item()) < 1e-12
