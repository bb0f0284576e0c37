"""RKL2 super-time-stepping (bench/peer_schemes/super_stepping.py), eager and compiled.

Physics asserted: second order in time against the exact semi-discrete decay of a cosine mode;
second-order convergence of the full scheme (Δt ∝ h) to the analytic diffusing Gaussian; mass
conserved to round-off with walls, solids and variable D; the L2 norm never grows (the stability
polynomial lies in [0, 1]) even for rough data at the stability limit; resolved puffs stay positive;
agreement with Heun at small steps; a compiled stage agrees with the eager one.
"""
from __future__ import annotations

import math

import pytest
import torch

from closedloop.physics import Grid, Kernel, diffuse, face_diffusivity, heun, stable_time_step
from peer_schemes.super_stepping import rkl2, rkl2_coefficients, rkl2_stage, rkl2_stages


def _box(n: int, lx: float = 2.0, ly: float = 1.5) -> Grid:
    return Grid((round(lx * n), round(ly * n)), (1 / n, 1 / n))


def _gaussian(grid: Grid, centre: tuple[float, float], var: float) -> torch.Tensor:
    x = grid.cell_centers(0).reshape(-1, 1) - centre[0]
    y = grid.cell_centers(1).reshape(1, -1) - centre[1]
    return torch.exp(-(x**2 + y**2) / (2 * var))


@pytest.mark.parametrize("ratio", [0.3, 1.0, 4.7, 30.0, 250.0])
def test_stage_count_is_the_fewest_stable(ratio: float) -> None:
    s = rkl2_stages(ratio, 1.0)
    assert (s * s + s - 2) / 4 >= ratio
    assert s == 2 or ((s - 1) ** 2 + (s - 1) - 2) / 4 < ratio


def test_coefficients_are_consistent() -> None:
    # first-order consistency of every stage: Y_j = Y₀ + c_j τ M + O(τ²) with c_s = 1 (the full step)
    for s in (2, 3, 7, 16):
        co = rkl2_coefficients(s)
        c_prev2, c_prev = 0.0, co[0][2]
        for mu, nu, mut, gt in co[1:]:
            c_prev2, c_prev = c_prev, mu * c_prev + nu * c_prev2 + mut + gt
        assert c_prev == pytest.approx(1.0, abs=1e-12)


def test_second_order_in_time_against_the_semi_discrete_decay() -> None:
    """A cosine mode is an eigenvector of the FV Laplacian: the exact ODE solution is exp(−λ_h t)."""
    n, D, T = 32, 0.2, 0.5
    grid = Grid((n, 3), (1 / n, 0.5))
    d = face_diffusivity(D, torch.ones(grid.shape, dtype=torch.bool), grid)
    mode = torch.cos(math.pi * grid.cell_centers(0)).reshape(-1, 1).expand(grid.shape).clone()
    lam_h = D * 4 * n**2 * math.sin(math.pi / (2 * n)) ** 2
    dte = stable_time_step(None, d, grid, safety=1.0)
    errs = []
    for steps in (4, 8, 16):
        dt = T / steps
        s = rkl2_stages(dt, dte)
        c = mode
        for _ in range(steps):
            c = rkl2(lambda f: diffuse(f, d, grid), c, dt, s)
        errs.append(abs((c * mode).sum().item() / (mode * mode).sum().item() - math.exp(-lam_h * T)))
    orders = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert min(orders) >= 1.9, (errs, orders)


def test_converges_to_the_analytic_gaussian_with_order_two() -> None:
    """c = σ₀²/(σ₀² + 2Dt) exp(−r²/(2(σ₀² + 2Dt))) in 2D; Δt ∝ h, so space and time errors both fall as h²."""
    D, var0, T = 0.05, 0.01, 0.2  # walls ≥ 4.3σ away at T: their reflection stays below 1e-4
    errs = []
    for n in (16, 32, 64):
        grid = _box(n)
        d = face_diffusivity(D, torch.ones(grid.shape, dtype=torch.bool), grid)
        centre = (1.0, 0.75)
        c = _gaussian(grid, centre, var0)
        steps = n // 4
        dt = T / steps
        s = rkl2_stages(dt, stable_time_step(None, d, grid, safety=1.0))
        for _ in range(steps):
            c = rkl2(lambda f: diffuse(f, d, grid), c, dt, s)
        var = var0 + 2 * D * T
        exact = var0 / var * _gaussian(grid, centre, var)
        errs.append(((c - exact).norm() / exact.norm()).item())
    orders = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert errs[-1] < 2e-3 and min(orders) >= 1.8, (errs, orders)


def _cluttered(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    grid = Grid((40, 30), (0.1, 0.1))
    fluid = torch.rand(grid.shape, generator=g) > 0.1
    k = 0.05 + torch.rand(grid.shape, generator=g, dtype=torch.float64)
    d = face_diffusivity(k, fluid, grid)
    c = torch.zeros(grid.shape, dtype=torch.float64)
    c[20, 15], c[5, 5], c[33, 4] = 1.0, 2.0, 0.5
    return grid, fluid, d, c * fluid


@pytest.mark.parametrize("stages", [2, 5, 13, 20])
def test_mass_conserved_and_l2_never_grows_at_the_stability_limit(stages: int) -> None:
    grid, fluid, d, c = _cluttered()
    dt = stable_time_step(None, d, grid, safety=1.0) * (stages**2 + stages - 2) / 4
    mass0, norm = c.sum().item(), c.norm().item()
    for _ in range(25):
        c = rkl2(lambda f: diffuse(f, d, grid), c, dt, stages)
        assert c.norm().item() <= norm * (1 + 1e-13)
        norm = c.norm().item()
        assert abs(c.sum().item() - mass0) <= 1e-13 * mass0
        assert (c[~fluid] == 0).all()  # no scalar inside solids


@pytest.mark.parametrize("stages", [3, 8, 13])
def test_resolved_puff_stays_positive_at_the_stability_limit(stages: int) -> None:
    grid = Grid((64, 48), (1 / 32, 1 / 32))
    d = face_diffusivity(0.1, torch.ones(grid.shape, dtype=torch.bool), grid)
    dt = stable_time_step(None, d, grid, safety=1.0) * (stages**2 + stages - 2) / 4
    c = _gaussian(grid, (1.0, 0.75), (2 / 32) ** 2)  # σ = 2 cells
    for _ in range(20):
        c = rkl2(lambda f: diffuse(f, d, grid), c, dt, stages)
        assert c.min().item() >= 0.0


def test_agrees_with_heun_at_small_steps() -> None:
    grid, _, d, c0 = _cluttered(1)
    rate = lambda f: diffuse(f, d, grid)  # noqa: E731
    dte = stable_time_step(None, d, grid, safety=1.0)
    T = 40 * dte
    ref = c0
    for _ in range(400):
        ref = heun(rate, ref, T / 400)
    c = c0
    for _ in range(20):
        c = rkl2(rate, c, T / 20, rkl2_stages(T / 20, dte))
    assert (c - ref).abs().max().item() < 1e-3 * c0.max().item()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_stage_agrees_with_eager(dtype: torch.dtype) -> None:
    """The fused (inductor) RKL2 stage and rate give the eager step up to round-off."""
    grid, _, d, c0 = _cluttered(2)
    d = tuple(x.to(dtype) for x in d)
    c0 = c0.to(dtype)
    rate = lambda f: diffuse(f, d, grid)  # noqa: E731
    dt = 10 * stable_time_step(None, d, grid, safety=1.0)
    s = rkl2_stages(dt, stable_time_step(None, d, grid, safety=1.0))
    stage, first = Kernel(rkl2_stage(rate), enabled=True), Kernel(rate, enabled=True)
    eager, fused = c0, c0
    for _ in range(3):
        eager = rkl2(rate, eager, dt, s)
        fused = rkl2(rate, fused, dt, s, stage=stage, first=first)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (fused - eager).abs().max().item() <= tol * c0.abs().max().item()
    assert abs(fused.double().sum().item() - c0.double().sum().item()) <= tol * c0.double().sum().item()
