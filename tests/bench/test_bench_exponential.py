"""Chebyshev exponential integrator for diffusion (bench/peer_schemes/exponential.py).

Physics asserted: the operator's columns (and rows) sum to zero and its spectrum lies inside the
Gershgorin bound; exp(tL)c agrees with torch.linalg.matrix_exp to 1e-10 and converges to it as the
tolerance (degree) tightens, never worse than the stated tolerance; a uniform field stays uniform;
mass is conserved to round-off with walls, solids and variable D; with exact time integration the
scheme converges at second order in h to the analytic diffusing Gaussian; undershoots of puffs below
zero stay within the tolerance (positivity is not guaranteed by construction).
"""
from __future__ import annotations

import math

import pytest
import torch

from closedloop.physics import Grid, Kernel, diffuse, face_diffusivity
from peer_schemes.exponential import (chebyshev_coefficients, chebyshev_degree, chebyshev_expm, clenshaw_block,
                                      clenshaw_stage, spectral_bound)

F64 = torch.float64


def _room(shape: tuple[int, ...], seed: int = 0, solid_fraction: float = 0.15):
    """A small box with random solid cells and a variable cell diffusivity (harmonic face means)."""
    gen = torch.Generator().manual_seed(seed)
    grid = Grid(shape, tuple(0.1 + 0.05 * a for a in range(len(shape))))
    fluid = torch.rand(shape, generator=gen, dtype=F64) >= solid_fraction
    fluid.view(-1)[0] = True
    k = 0.02 + 0.1 * torch.rand(shape, generator=gen, dtype=F64)
    d = face_diffusivity(k, fluid, grid)
    c = torch.rand(shape, generator=gen, dtype=F64) * fluid
    return grid, d, fluid, c


def _matrix(grid: Grid, d) -> torch.Tensor:
    n = math.prod(grid.shape)
    eye = torch.eye(n, dtype=F64).reshape(n, *grid.shape)
    return diffuse(eye, d, grid).reshape(n, n).T  # column j = L e_j


def test_coefficients_match_scaled_bessel() -> None:
    special = pytest.importorskip("scipy.special")
    for a in (0.0, 0.4, 7.0, 350.0):
        alpha = chebyshev_coefficients(a, 1e-15)
        for k, x in enumerate(alpha[:40]):
            ref = (1 if k == 0 else 2) * special.ive(k, a)
            assert x == pytest.approx(ref, rel=1e-12, abs=1e-15)
        assert math.fsum(alpha) == pytest.approx(1.0, abs=1e-15)


def test_degree_grows_like_sqrt_of_the_spectral_interval() -> None:
    # N ≈ √(2a ln(1/tol)): quadrupling a roughly doubles N, far fewer than a Euler steps
    n1, n4 = chebyshev_degree(400.0, 1.0), chebyshev_degree(1600.0, 1.0)
    assert 1.7 < n4 / n1 < 2.2
    assert n4 < 1600.0 / 2 / 3


def test_operator_columns_sum_to_zero_and_spectrum_inside_gershgorin() -> None:
    grid, d, fluid, _ = _room((6, 5, 4))
    L = _matrix(grid, d)
    assert L.sum(dim=0).abs().max() < 1e-12  # 1ᵀL = 0: mass conservation
    assert L.sum(dim=1).abs().max() < 1e-12  # L·1 = 0: uniform fields are steady
    assert torch.allclose(L, L.T, atol=1e-12)  # uniform cells: symmetric, real spectrum
    ev = torch.linalg.eigvalsh(L)
    rho = spectral_bound(d, grid)
    assert ev.max() < 1e-10 and -ev.min() <= rho * (1 + 1e-12)
    assert -ev.min() > 0.5 * rho  # and the bound is not vacuous


@pytest.mark.parametrize("shape", [(9, 7), (6, 5, 4)])
def test_agrees_with_matrix_exponential(shape) -> None:
    grid, d, _, c = _room(shape)
    L = _matrix(grid, d)
    rho = spectral_bound(d, grid)
    rate = lambda f: diffuse(f, d, grid)  # noqa: E731
    for t in (0.01, 0.3, 2.0):
        ref = (torch.linalg.matrix_exp(t * L) @ c.reshape(-1)).reshape(grid.shape)
        out = chebyshev_expm(rate, c, t, rho, tol=1e-13)
        assert (out - ref).abs().max() < 1e-10


def test_converges_to_reference_as_degree_grows_within_tolerance() -> None:
    grid, d, _, c = _room((10, 8), seed=3)
    L = _matrix(grid, d)
    rho, t = spectral_bound(d, grid), 1.5
    ref = (torch.linalg.matrix_exp(t * L) @ c.reshape(-1)).reshape(grid.shape)
    rate = lambda f: diffuse(f, d, grid)  # noqa: E731
    errs, degrees = [], []
    for tol in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10):
        out = chebyshev_expm(rate, c, t, rho, tol=tol)
        err = float((out - ref).norm() / c.norm())
        assert err <= tol  # the stated sup-norm bound on the spectrum, in the 2-norm (L symmetric)
        errs.append(err)
        degrees.append(chebyshev_degree(rho, t, tol))
    assert degrees == sorted(degrees) and degrees[0] < degrees[-1]
    assert all(b < a for a, b in zip(errs, errs[1:]))
    assert errs[-1] < 1e-11


@pytest.mark.parametrize("shape", [(12, 9), (7, 6, 5)])
def test_uniform_field_stays_uniform_and_mass_is_conserved(shape) -> None:
    grid, d, fluid, c = _room(shape, seed=1)
    rho = spectral_bound(d, grid)
    rate = lambda f: diffuse(f, d, grid)  # noqa: E731
    for tol in (1e-3, 1e-8):
        ones = torch.ones(shape, dtype=F64)
        assert (chebyshev_expm(rate, ones, 5.0, rho, tol) - 1).abs().max() < 1e-13
        out = chebyshev_expm(rate, c, 5.0, rho, tol)
        assert abs(float(out.sum() - c.sum())) < 1e-12 * float(c.sum())
        assert float(out[~fluid].abs().max()) == 0.0  # nothing enters the solids


def test_second_order_convergence_to_the_analytic_gaussian() -> None:
    """Exact in time, so the error is the O(h²) of the FV Laplacian against the free-space Gaussian."""
    D, t, var0 = 0.05, 0.05, 0.01  # box [0, 2]²: the walls lie 8σ from the centre at t
    errs = []
    for n in (16, 32, 64):
        grid = Grid((2 * n, 2 * n), (1 / n, 1 / n))
        x = grid.cell_centers(0).reshape(-1, 1) - 1.0
        y = grid.cell_centers(1).reshape(1, -1) - 1.0
        r2 = x**2 + y**2
        c0 = torch.exp(-r2 / (2 * var0))
        var = var0 + 2 * D * t
        exact = var0 / var * torch.exp(-r2 / (2 * var))
        d = face_diffusivity(D, torch.ones(grid.shape, dtype=torch.bool), grid)
        out = chebyshev_expm(lambda f: diffuse(f, d, grid), c0, t, spectral_bound(d, grid), tol=1e-10)
        errs.append(float((out - exact).norm() / exact.norm()))
    orders = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert all(o > 1.8 for o in orders), (errs, orders)


def test_undershoot_of_puffs_is_bounded_by_the_tolerance() -> None:
    """Single-cell puffs (the worst case for positivity) in rooms with solids and variable D: exact
    exp(tL) keeps them ≥ 0, the truncated series is only guaranteed to within the tolerance (its
    monomial coefficients have mixed signs). None has been seen below zero: on a uniform 1D lattice
    X = I + (2/ρ)L is the average of the two shifts and T_k(X)δ_i = (δ_{i+k} + δ_{i−k})/2 ≥ 0."""
    worst = 0.0
    for seed in range(4):
        grid, d, fluid, _ = _room((14, 11), seed=seed, solid_fraction=0.2)
        rate = lambda f: diffuse(f, d, grid)  # noqa: E731
        rho = spectral_bound(d, grid)
        c = torch.zeros(grid.shape, dtype=F64)
        c[tuple(torch.nonzero(fluid)[7 * seed])] = 1.0
        for t in (0.05, 1.0):
            for tol in (1e-2, 1e-6):
                out = chebyshev_expm(rate, c, t, rho, tol)
                assert float(out.min()) >= -tol
                worst = min(worst, float(out.min()))
    assert worst >= -1e-6


def test_blocked_and_compiled_paths_agree_with_eager() -> None:
    grid, d, _, c = _room((11, 9, 6), seed=2)
    d32 = tuple(x.float() for x in d)
    rho = spectral_bound(d, grid)
    for dd, cc, atol in ((d, c, 1e-13), (d32, c.float(), 2e-5)):
        rate = lambda f: diffuse(f, dd, grid)  # noqa: E731
        ref = chebyshev_expm(rate, cc, 0.7, rho, 1e-8)
        blocked = chebyshev_expm(rate, cc, 0.7, rho, 1e-8, block=clenshaw_block(rate, 3), unroll=3)
        assert torch.allclose(blocked, ref, rtol=0, atol=atol)
    rate = lambda f: diffuse(f, d, grid)  # noqa: E731
    stage, block = Kernel(clenshaw_stage(rate), enabled=True), Kernel(clenshaw_block(rate, 2), enabled=True)
    out = chebyshev_expm(rate, c, 0.7, rho, 1e-8, stage=stage, block=block, unroll=2)
    if stage.compiled:
        assert torch.allclose(out, chebyshev_expm(rate, c, 0.7, rho, 1e-8), rtol=0, atol=1e-12)
