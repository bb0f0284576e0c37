"""Positivity, the discrete maximum principle and the meaning of ``stable_time_step``."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics import (face_diffusivity, forward_euler, heun, stable_time_step,
                                transport_rate)
from closedloop.physics.equations import outflow_coefficient
from fv_test_fields import F64, grid_for, random_solid, stream_velocity


def _case(ndim: int, seed: int, solid_fraction: float = 0.0):
    gen = torch.Generator().manual_seed(seed)
    grid = grid_for(ndim)
    solid = (random_solid(grid.shape, solid_fraction, gen) if solid_fraction
             else torch.zeros(grid.shape, dtype=torch.bool))
    vel = stream_velocity(grid, gen, amplitude=0.3, solid=solid)
    diff = face_diffusivity(0.02, ~solid, grid)
    # rough data with exact zeros next to large values: the hardest case for positivity
    c0 = torch.rand(grid.shape, generator=gen, dtype=F64)
    c0 = c0 * (torch.rand(grid.shape, generator=gen, dtype=F64) < 0.5) * ~solid
    return grid, vel, diff, c0


def _jacobian(grid, vel, diff):
    rate = lambda c: transport_rate(c, vel, diff, None, grid)  # noqa: E731
    n = torch.Size(grid.shape).numel()
    jac = torch.autograd.functional.jacobian(rate, torch.zeros(grid.shape, dtype=F64))
    return jac.reshape(n, n)


@pytest.mark.parametrize("ndim", [2, 3])
def test_stable_step_is_inverse_of_largest_self_drain_rate(ndim):
    """The transport operator is an M-matrix: diagonal −λ_i, off-diagonals ≥ 0, and the bound is 1/max λ."""
    grid, vel, diff, _ = _case(ndim, seed=3 + ndim, solid_fraction=0.15)
    jac = _jacobian(grid, vel, diff)
    diag = torch.diagonal(jac)
    off = jac - torch.diag(diag)
    assert off.min().item() >= 0.0
    lam = outflow_coefficient(vel, diff, grid)
    assert torch.allclose(-diag, lam.reshape(-1), rtol=1e-12, atol=1e-12)
    assert stable_time_step(vel, diff, grid, safety=1.0) == pytest.approx(1.0 / lam.max().item(),
                                                                           rel=1e-14)
    assert stable_time_step(vel, diff, grid, safety=0.5) == pytest.approx(0.5 / lam.max().item(),
                                                                           rel=1e-14)
    # closed box: columns sum to zero (conservation); divergence-free: rows sum to zero (constants stay)
    assert jac.sum(dim=0).abs().max().item() < 1e-12 * lam.max().item()
    assert jac.sum(dim=1).abs().max().item() < 1e-12 * lam.max().item()


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("stepper", [forward_euler, heun], ids=["euler", "heun"])
@pytest.mark.parametrize("safety", [1.0, 0.6])
def test_positivity_and_maximum_principle_at_stable_step(ndim, stepper, safety):
    grid, vel, diff, c0 = _case(ndim, seed=11 + ndim, solid_fraction=0.1)
    dt = stable_time_step(vel, diff, grid, safety=safety)
    c = c0.clone()
    hi = c0.max().item()
    running_max = hi
    for _ in range(150):
        c = stepper(lambda x: transport_rate(x, vel, diff, None, grid), c, dt)
        assert c.min().item() >= -1e-15
        m = c.max().item()
        assert m <= running_max * (1 + 1e-14)  # the maximum never grows, step after step
        running_max = m
    assert running_max < 0.9 * hi  # and the data really was mixed


@pytest.mark.parametrize("ndim", [2, 3])
def test_spike_in_fastest_draining_cell_stays_non_negative_exactly_at_the_limit(ndim):
    grid, vel, diff, _ = _case(ndim, seed=21 + ndim)
    lam = outflow_coefficient(vel, diff, grid)
    c = torch.zeros(grid.shape, dtype=F64)
    c.view(-1)[lam.argmax()] = 1.0
    rate = lambda x: transport_rate(x, vel, diff, None, grid)  # noqa: E731
    at_limit = forward_euler(rate, c, stable_time_step(vel, diff, grid, safety=1.0))
    assert at_limit.min().item() >= -1e-15
    assert at_limit.view(-1)[lam.argmax()].abs().item() < 1e-14  # the cell drains exactly empty
    beyond = forward_euler(rate, c, 1.5 * stable_time_step(vel, diff, grid, safety=1.0))
    assert beyond.view(-1)[lam.argmax()].item() == pytest.approx(-0.5, rel=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("terms", ["advection", "diffusion", "both"])
def test_steps_several_times_the_bound_break_positivity(ndim, terms):
    """The bound is meaningful: 3× the stable step makes the same data go negative."""
    grid, vel, diff, c0 = _case(ndim, seed=31 + ndim)
    v = vel if terms != "diffusion" else tuple(torch.zeros_like(u) for u in vel)
    d = diff if terms != "advection" else None
    dt_ok = stable_time_step(v if terms != "diffusion" else None, d, grid, safety=1.0)
    rate = lambda x: transport_rate(x, v, d, None, grid)  # noqa: E731

    c = c0.clone()
    for _ in range(20):
        c = forward_euler(rate, c, dt_ok)
    assert c.min().item() >= -1e-15

    c = c0.clone()
    worst = 0.0
    for _ in range(20):
        c = forward_euler(rate, c, 3.0 * dt_ok)
        worst = min(worst, c.min().item())
    assert worst < -0.01 * c0.max().item()


def test_stable_time_step_edge_cases():
    grid = grid_for(2)
    zero = tuple(torch.zeros(grid.face_shape(a), dtype=F64) for a in range(2))
    assert stable_time_step(zero, None, grid) == float("inf")
    with pytest.raises(ValueError, match="safety"):
        stable_time_step(zero, None, grid, safety=1.5)
    with pytest.raises(ValueError, match="safety"):
        stable_time_step(zero, None, grid, safety=0.0)
    with pytest.raises(ValueError):
        stable_time_step(None, None, grid)
    # pure diffusion, uniform D on an open box: the classic 1 / (2 D Σ 1/h²) bound in the interior
    fluid = torch.ones(grid.shape, dtype=torch.bool)
    dt = stable_time_step(None, face_diffusivity(0.1, fluid, grid), grid, safety=1.0)
    assert dt == pytest.approx(1.0 / (2 * 0.1 * sum(1 / h ** 2 for h in grid.spacing)), rel=1e-14)
    # pure advection with a uniform velocity U along x: the CFL bound h/U
    vel = (torch.full(grid.face_shape(0), 0.8, dtype=F64), zero[1])
    assert stable_time_step(vel, None, grid, safety=1.0) == pytest.approx(grid.spacing[0] / 0.8,
                                                                          rel=1e-14)
