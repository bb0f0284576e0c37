"""Cross-check of the FV core against an independent peer solver, py-pde (test-only dependency).

Both codes discretise on the same cell-centred grid with second-order stencils:

* diffusion with no-flux walls — ours: flux form ∇·(D∇c) with D = 0 on the box faces; py-pde:
  the 5/7-point Laplacian with Neumann ghost cells (ghost = adjacent cell). Algebraically the same
  operator, so with the *same* time scheme (forward Euler) and the *same* Δt the two solutions agree
  to round-off, and with different time integrators they agree to the time-discretisation error;
* upwind advection through open inflow/outflow faces — ours: F = u⁺c_L + u⁻c_R with clean inflow
  (ghost value 0); py-pde: one-sided (backward/forward) differences with a Robin condition
  ∂c/∂n + γc = 0, γ = 2/h, whose virtual point is exactly g = 0 ((g − c₀)/h + γ(g + c₀)/2 = 0).
  On the outflow side the one-sided difference only reads interior cells, like the upwind flux.

py-pde's numba backend (its default, used for the anisotropic-spacing case) compiles on first use
(≈20–25 s on this 2-core CPU); the other cases use its scipy backend (ndimage stencils, no JIT, uniform
spacing only) to keep the module well under a minute.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from closedloop.physics import (Grid, diffuse, face_diffusivity, forward_euler, heun, stable_time_step,
                                transport_rate)

pde = pytest.importorskip("pde")
ndimage = pytest.importorskip("scipy.ndimage")

F64 = torch.float64

pytestmark = pytest.mark.numerics  # agreement to roundoff: rerun under another instruction set


def _pde_grid(grid: Grid):
    return pde.CartesianGrid([[0.0, n * h] for n, h in zip(grid.shape, grid.spacing)], list(grid.shape))


def _gaussian_puff(grid: Grid, centre: tuple[float, ...], width: float) -> torch.Tensor:
    r2 = sum(((grid.cell_centers(a) - centre[a]) ** 2).reshape([-1 if b == a else 1 for b in range(grid.ndim)])
             for a in range(grid.ndim))
    return torch.exp(-r2 / (2 * width**2))


def _smooth_random(grid: Grid, seed: int, sigma_cells: float = 2.0) -> torch.Tensor:
    """A smooth random field (filtered white noise plus an offset); not Neumann-compatible at the walls."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(grid.shape), sigma_cells, mode="wrap")
    return torch.from_numpy(1.0 + noise / np.abs(noise).max())


def _mass(c: torch.Tensor, grid: Grid) -> float:
    return c.sum().item() * grid.cell_volume


def _run(step, rate, c0: torch.Tensor, dt: float, steps: int) -> torch.Tensor:
    c = c0.clone()
    for _ in range(steps):
        c = step(rate, c, dt)
    return c


def _rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _steps(t_end: float, dt_target: float) -> tuple[float, int]:
    n = math.ceil(t_end / dt_target)
    return t_end / n, n


# ---------------------------------------------------------------------------------------------------
# (a) 2D diffusion, closed box: same scheme, same Δt  ->  round-off (py-pde numba backend, hx ≠ hy)
# ---------------------------------------------------------------------------------------------------

def test_diffusion_2d_forward_euler_matches_pypde_numba_to_roundoff():
    # anisotropic cells (hx = 0.125, hy = 0.1) and a non-square box catch any axis mix-up
    grid = Grid((24, 20), (3.0 / 24, 2.0 / 20))
    k = 0.05
    d = face_diffusivity(k, torch.ones(grid.shape, dtype=torch.bool), grid)
    rate = lambda f: diffuse(f, d, grid)  # noqa: E731
    t_end = 2.0
    dt, steps = _steps(t_end, 0.9 * stable_time_step(None, d, grid))

    pgrid = _pde_grid(grid)
    assert np.allclose(pgrid.axes_coords[0], grid.cell_centers(0).numpy())
    assert np.allclose(pgrid.axes_coords[1], grid.cell_centers(1).numpy())
    eq = pde.DiffusionPDE(diffusivity=k, bc={"derivative": 0})
    solver = pde.EulerSolver(eq, backend="numba")
    initial = {"puff": _gaussian_puff(grid, (1.1, 0.7), 0.25), "random": _smooth_random(grid, seed=3)}
    stepper = None
    for name, c0 in initial.items():
        field = pde.ScalarField(pgrid, c0.numpy().copy())
        if stepper is None:  # compile once (≈20 s of numba JIT), reuse for the second field
            stepper = solver.make_stepper(field, dt=dt)
        t_final = stepper(field, 0.0, t_end)
        assert t_final == pytest.approx(t_end) and solver.info["steps"] == steps * (1 + (name == "random"))
        ours = _run(forward_euler, rate, c0, dt, steps).numpy()
        peer = field.data
        print(f"2D diffusion ({name}), forward Euler vs py-pde numba Euler: max |Δ| {np.abs(ours - peer).max():.3g}")
        # measured: max |Δ| = 2.8e-17 (puff), 2.2e-16 (random), i.e. round-off; allow 1e-13 of the amplitude
        # (py-pde compiles with fastmath, so bitwise equality is not expected)
        assert np.abs(ours - peer).max() <= 1e-13 * np.abs(c0.numpy()).max(), name
        # and the solution really moved (this is not a trivially-equal comparison)
        assert np.abs(ours - c0.numpy()).max() > 1e-2, name
        # mass conservation in both codes (no-flux walls)
        m0 = _mass(c0, grid)
        assert _mass(torch.from_numpy(ours), grid) == pytest.approx(m0, rel=1e-13), name
        assert field.integral == pytest.approx(m0, rel=1e-13), name


# ---------------------------------------------------------------------------------------------------
# (a') 2D diffusion: our Heun vs py-pde + scipy solve_ivp (rtol 1e-10), a time-converged reference
# ---------------------------------------------------------------------------------------------------

def test_diffusion_2d_heun_matches_pypde_ivp_within_time_error():
    grid = Grid((30, 20), (0.1, 0.1))
    k = 0.05
    d = face_diffusivity(k, torch.ones(grid.shape, dtype=torch.bool), grid)
    rate = lambda f: diffuse(f, d, grid)  # noqa: E731
    t_end = 2.0
    c0 = _gaussian_puff(grid, (1.0, 0.8), 0.2)
    field = pde.ScalarField(_pde_grid(grid), c0.numpy().copy())
    eq = pde.DiffusionPDE(diffusivity=k, bc={"derivative": 0})
    peer = eq.solve(field, t_range=t_end, solver="scipy", backend="scipy", tracker=None,
                    rtol=1e-10, atol=1e-13)
    dt_lim = stable_time_step(None, d, grid, safety=1.0)
    errors = []
    for safety in (0.9, 0.45, 0.225):
        dt, steps = _steps(t_end, safety * dt_lim)
        errors.append(_rel_l2(_run(heun, rate, c0, dt, steps).numpy(), peer.data))
    orders = [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]
    print(f"2D diffusion, Heun vs py-pde solve_ivp: rel L2 {errors}, orders {orders}")
    # measured rel L2: 1.6e-4 at the largest stable step (safety 0.9), 4.0e-5 at 0.45, 1.0e-5 at 0.225,
    # observed order 2.00/2.02. The spatial operators are identical (see the Euler tests), so the
    # whole difference is Heun's O(Δt²) error (the ivp reference is accurate to ~1e-10): it is
    # largest at the stability limit, where the puff's short waves have λΔt ≈ 1. Bounds: 2× measured.
    assert errors[0] < 3e-4
    assert errors[-1] < 2e-5
    assert all(1.9 < o < 2.1 for o in orders), orders
    assert peer.integral == pytest.approx(_mass(c0, grid), rel=1e-10)


# ---------------------------------------------------------------------------------------------------
# (b) 3D diffusion in a closed box (py-pde scipy backend)
# ---------------------------------------------------------------------------------------------------

def test_diffusion_3d_matches_pypde():
    grid = Grid((12, 8, 6), (0.25, 0.25, 0.25))
    k = 0.02
    d = face_diffusivity(k, torch.ones(grid.shape, dtype=torch.bool), grid)
    rate = lambda f: diffuse(f, d, grid)  # noqa: E731
    t_end = 3.0
    c0 = _smooth_random(grid, seed=11, sigma_cells=1.5)
    eq = pde.DiffusionPDE(diffusivity=k, bc={"derivative": 0})
    dt, steps = _steps(t_end, 0.9 * stable_time_step(None, d, grid))
    # same scheme and Δt: round-off (measured max |Δ| = 4.4e-16 on an O(1) field)
    euler_peer = eq.solve(pde.ScalarField(_pde_grid(grid), c0.numpy().copy()), t_range=t_end, dt=dt,
                          solver="euler", backend="scipy", tracker=None)
    ours_euler = _run(forward_euler, rate, c0, dt, steps).numpy()
    print(f"3D diffusion, forward Euler vs py-pde Euler: max |Δ| {np.abs(ours_euler - euler_peer.data).max():.3g}")
    assert np.abs(ours_euler - euler_peer.data).max() <= 1e-13
    assert np.abs(ours_euler - c0.numpy()).max() > 1e-2
    # Heun vs a time-converged peer (solve_ivp, rtol 1e-10)
    ivp_peer = eq.solve(pde.ScalarField(_pde_grid(grid), c0.numpy().copy()), t_range=t_end,
                        solver="scipy", backend="scipy", tracker=None, rtol=1e-10, atol=1e-13)
    dt_lim = stable_time_step(None, d, grid, safety=1.0)
    errors = []
    for safety in (0.9, 0.225):
        dt_h, steps_h = _steps(t_end, safety * dt_lim)
        errors.append(_rel_l2(_run(heun, rate, c0, dt_h, steps_h).numpy(), ivp_peer.data))
    order = math.log2(errors[0] / errors[1]) / 2
    print(f"3D diffusion, Heun vs py-pde solve_ivp: rel L2 {errors}, order {order}")
    # measured rel L2: 5.4e-4 at safety 0.9, 3.3e-5 at 0.225 (order 2.01). The random field carries
    # more short-wave content than the puff, hence the larger error at the stability limit.
    # Bounds: 2× measured.
    assert errors[0] < 1.1e-3
    assert errors[1] < 7e-5
    assert 1.8 < order < 2.2
    m0 = _mass(c0, grid)
    for mass in (_mass(torch.from_numpy(ours_euler), grid), euler_peer.integral, ivp_peer.integral):
        assert mass == pytest.approx(m0, rel=1e-10)


# ---------------------------------------------------------------------------------------------------
# (b') 2D advection–diffusion, uniform flow through open inflow/outflow faces
# ---------------------------------------------------------------------------------------------------

class _UpwindAdvectionDiffusion(pde.PDEBase):
    """∂c/∂t = K∇²c − U ∂c/∂x − V ∂c/∂y with U > 0, V < 0, one-sided (upwind) differences."""

    def __init__(self, k: float, u: float, v: float, h: float, inflow_bc: dict):
        super().__init__()
        assert u > 0 > v
        self.k, self.u, self.v = k, u, v
        self.bc_walls = {"derivative": 0}  # no diffusive flux through any box face
        self.bc_inflow = inflow_bc

    def evolution_rate(self, state, t=0):
        backward = state.gradient(bc=self.bc_inflow, method="backward", backend="scipy")
        forward = state.gradient(bc=self.bc_inflow, method="forward", backend="scipy")
        laplace = state.laplace(bc=self.bc_walls, backend="scipy")
        return self.k * laplace - self.u * backward[0] - self.v * forward[1]


def test_advection_diffusion_2d_upwind_matches_pypde():
    grid = Grid((30, 20), (0.1, 0.1))
    h = 0.1
    k, u, v = 0.02, 0.3, -0.2  # cell Péclet |u|h/K = 1.5
    d = face_diffusivity(k, torch.ones(grid.shape, dtype=torch.bool), grid)
    # uniform face velocity on *all* faces, box faces included: inflow through x = 0 and y = Ly,
    # outflow through x = Lx and y = 0
    vel = (torch.full(grid.face_shape(0), u, dtype=F64), torch.full(grid.face_shape(1), v, dtype=F64))
    rate = lambda f: transport_rate(f, vel, d, None, grid)  # noqa: E731
    t_end = 4.0
    # the puff starts 2.5σ from the inflow face x = 0, so the inflow condition matters (c₀ ≈ 0.1 there)
    c0 = _gaussian_puff(grid, (0.5, 1.3), 0.2)
    pgrid = _pde_grid(grid)
    eq = _UpwindAdvectionDiffusion(k, u, v, h, inflow_bc={"mixed": 2 / h})  # virtual point 0
    dt_lim = stable_time_step(vel, d, grid, safety=1.0)
    dt, steps = _steps(t_end, 0.9 * dt_lim)

    ours = _run(forward_euler, rate, c0, dt, steps).numpy()
    peer = eq.solve(pde.ScalarField(pgrid, c0.numpy().copy()), t_range=t_end, dt=dt, solver="euler",
                    backend="numpy", tracker=None)
    # measured max |Δ| = 2.8e-17: the discrete operators, boundary conditions included, are the same
    print(f"2D advection-diffusion, forward Euler vs py-pde Euler: max |Δ| {np.abs(ours - peer.data).max():.3g}")
    assert np.abs(ours - peer.data).max() <= 1e-13
    m0, m_ours = _mass(c0, grid), _mass(torch.from_numpy(ours), grid)
    assert m_ours < 0.9 * m0  # measured 0.84: part of the plume has left through the outflow faces
    assert peer.integral == pytest.approx(m_ours, rel=1e-12)

    # sensitivity: a zero-gradient inflow (ghost = c₀) instead of clean air differs by 0.075 (max |Δ|)
    wrong = _UpwindAdvectionDiffusion(k, u, v, h, inflow_bc={"derivative": 0}).solve(
        pde.ScalarField(pgrid, c0.numpy().copy()), t_range=t_end, dt=dt, solver="euler", backend="numpy",
        tracker=None)
    print(f"  mass ratio {m_ours / m0:.3f}; wrong inflow BC max |Δ| {np.abs(ours - wrong.data).max():.3g}")
    assert np.abs(ours - wrong.data).max() > 1e-3

    # Heun vs a time-converged peer (solve_ivp, rtol 1e-10): second order in Δt
    ivp = eq.solve(pde.ScalarField(pgrid, c0.numpy().copy()), t_range=t_end, solver="scipy", backend="numpy",
                   tracker=None, rtol=1e-10, atol=1e-13)
    errors = []
    for safety in (0.5, 0.25, 0.125):
        dt_h, steps_h = _steps(t_end, safety * dt_lim)
        errors.append(_rel_l2(_run(heun, rate, c0, dt_h, steps_h).numpy(), ivp.data))
    orders = [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]
    print(f"2D advection-diffusion, Heun vs py-pde solve_ivp: rel L2 {errors}, orders {orders}")
    # measured rel L2: 4.3e-4 at safety 0.5, 1.1e-4 at 0.25, 2.7e-5 at 0.125 (orders 2.01, 2.01);
    # bound 1e-3 (≈2× measured) for the coarsest step, 6e-5 for the finest, orders in (1.8, 2.2)
    assert errors[0] < 1e-3
    assert errors[-1] < 6e-5
    assert all(1.8 < o < 2.2 for o in orders), orders
