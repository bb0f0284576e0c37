"""Matrix-free (Jacobi-preconditioned) conjugate gradients."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics import Grid, conjugate_gradient, divergence, face_gradient, open_faces
from fv_test_fields import F64


def _spd(n: int, seed: int, spread: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen, dtype=F64)
    a = m @ m.T / n + 0.1 * torch.eye(n, dtype=F64)
    s = torch.diag(torch.logspace(0, spread, n, dtype=F64))  # badly scaled rows/columns
    a = s @ a @ s
    return a, torch.randn(n, generator=gen, dtype=F64)


@pytest.mark.parametrize("rtol", [1e-8, 1e-12])
def test_random_spd_system_solved_to_tolerance(rtol):
    a, b = _spd(60, seed=1)
    x, info = conjugate_gradient(lambda v: a @ v, b, rtol=rtol)
    assert info.converged
    res = (torch.linalg.vector_norm(a @ x - b) / torch.linalg.vector_norm(b)).item()
    assert res <= rtol * 1.05
    assert info.residual <= rtol
    assert info.residual == pytest.approx(res, rel=1e-2)  # recursive vs true residual
    exact = torch.linalg.solve(a, b)
    cond = torch.linalg.cond(a).item()
    assert (torch.linalg.vector_norm(x - exact) / torch.linalg.vector_norm(exact)).item() < 10 * cond * rtol


def test_jacobi_preconditioner_helps_badly_scaled_system():
    a, b = _spd(80, seed=2, spread=3.0)
    inv_diag = 1.0 / torch.diagonal(a)
    x_plain, plain = conjugate_gradient(lambda v: a @ v, b, rtol=1e-10, max_iter=5000)
    x_pre, pre = conjugate_gradient(lambda v: a @ v, b, inverse_diagonal=inv_diag, rtol=1e-10)
    assert pre.converged
    assert torch.linalg.vector_norm(a @ x_pre - b) <= 1e-10 * torch.linalg.vector_norm(b) * 1.01
    assert pre.iterations < plain.iterations


def test_max_iter_reports_non_convergence():
    a, b = _spd(60, seed=3)
    _, info = conjugate_gradient(lambda v: a @ v, b, rtol=1e-12, max_iter=3)
    assert info.iterations == 3 and not info.converged and info.residual > 1e-12


def test_zero_rhs_returns_zero_immediately():
    a, _ = _spd(10, seed=4)
    x, info = conjugate_gradient(lambda v: a @ v, torch.zeros(10, dtype=F64))
    assert info.converged and info.iterations == 0 and torch.all(x == 0)


def _neumann_laplacian(grid: Grid, fluid: torch.Tensor):
    masks = [open_faces(fluid, grid, a).to(F64) for a in range(grid.ndim)]
    fl = fluid.to(F64)

    def apply_a(phi):
        return -divergence([face_gradient(phi, grid, a, masks[a]) for a in range(grid.ndim)], grid) * fl

    diag = sum((masks[a].narrow(a, 0, grid.shape[a]) + masks[a].narrow(a, 1, grid.shape[a]))
               / grid.spacing[a] ** 2 for a in range(grid.ndim))
    inv = torch.where(diag > 0, 1.0 / diag.clamp_min(1e-300), torch.zeros_like(diag))
    return apply_a, inv


@pytest.mark.parametrize("with_solids", [False, True])
def test_singular_consistent_neumann_laplacian_converges(with_solids):
    grid = Grid(shape=(10, 8, 5), spacing=(0.3, 0.25, 0.4))
    gen = torch.Generator().manual_seed(5)
    fluid = torch.ones(grid.shape, dtype=torch.bool)
    if with_solids:
        # a slab of solid cells: the fluid stays one connected region
        fluid[4:7, 2:6, :] = False
    apply_a, inv = _neumann_laplacian(grid, fluid)
    # the null space is the constant on the fluid: check it, then make b orthogonal to it
    ones = fluid.to(F64)
    assert apply_a(ones).abs().max().item() < 1e-12
    b = torch.randn(grid.shape, generator=gen, dtype=F64) * ones
    b = (b - b.sum() / ones.sum()) * ones
    phi, info = conjugate_gradient(apply_a, b, inv, rtol=1e-11, max_iter=5000)
    assert info.converged, info
    assert (torch.linalg.vector_norm(apply_a(phi) - b) / torch.linalg.vector_norm(b)).item() <= 1.01e-11
    # the solution is defined up to a constant: it matches a dense least-squares solution
    n = fluid.sum().item()
    idx = fluid.reshape(-1).nonzero().squeeze(1)
    cols = []
    for k in idx.tolist():
        e = torch.zeros(grid.shape, dtype=F64)
        e.view(-1)[k] = 1.0
        cols.append(apply_a(e).reshape(-1)[idx])
    dense = torch.stack(cols, dim=1)
    assert torch.allclose(dense, dense.T, atol=1e-10)  # symmetric
    # (A + 1 1ᵀ/n) is regular and, for b ⟂ 1, its solution is the mean-free solution of A x = b
    ref = torch.linalg.solve(dense + torch.ones_like(dense) / n, b.reshape(-1)[idx])
    sol = phi.reshape(-1)[idx]
    diff = (sol - sol.mean()) - (ref - ref.mean())
    assert diff.abs().max().item() < 1e-8 * ref.abs().max().item()


def _inconsistent_solve():
    grid = Grid(shape=(8, 6), spacing=(0.5, 0.5))
    fluid = torch.ones(grid.shape, dtype=torch.bool)
    apply_a, inv = _neumann_laplacian(grid, fluid)
    b = torch.zeros(grid.shape, dtype=F64)
    b[0, 0] = 1.0  # net source: no steady solution with closed walls
    return conjugate_gradient(apply_a, b, inv, rtol=1e-10, max_iter=300)


def test_inconsistent_neumann_problem_is_reported_not_converged():
    _, info = _inconsistent_solve()
    assert not info.converged
    assert not info.residual <= 1e-10


def test_inconsistent_neumann_problem_keeps_finite_iterate_and_residual():
    x, info = _inconsistent_solve()
    assert torch.isfinite(x).all()
    # A x lies in the range of A, orthogonal to the constants: the residual can never drop below
    # the constant part of b, ‖b‖/√48 here; a correct report is finite and at least that
    assert 48 ** -0.5 * (1 - 1e-9) <= info.residual < float("inf")


def test_random_solids_mask_pattern_is_handled():
    """Solid cells carry a zero preconditioner entry and stay exactly zero in the solution."""
    grid = Grid(shape=(10, 10), spacing=(0.5, 0.5))
    gen = torch.Generator().manual_seed(9)
    solid = torch.zeros(grid.shape, dtype=torch.bool)
    solid[3:6, 3:6] = True
    solid[0, 9] = solid[8, 1] = True
    fluid = ~solid
    apply_a, inv = _neumann_laplacian(grid, fluid)
    b = torch.randn(grid.shape, generator=gen, dtype=F64) * fluid
    b = (b - b[fluid].mean()) * fluid
    phi, info = conjugate_gradient(apply_a, b, inv, rtol=1e-12)
    assert info.converged
    assert torch.all(phi[solid] == 0)
