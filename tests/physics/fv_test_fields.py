"""Shared builders for the physics tests: grids, solid masks and exactly divergence-free flows.

Divergence-free face velocities come from a discrete stream function (2D) or a discrete vector
potential on cell edges (3D): the discrete divergence of a discrete curl vanishes identically,
so ∇·u = 0 holds to round-off in every cell. Potentials that vanish on every boundary edge/node
(and on every edge/node of a solid cell) give u·n = 0 on the box walls (and on every face that
touches a solid), i.e. a closed box.
"""
from __future__ import annotations

import torch

from closedloop.physics import Grid

F64 = torch.float64


def touching(solid: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Bool mask on the lattice staggered along ``axes``: True where an adjacent cell is solid."""
    m = solid
    for a in axes:
        pad = torch.zeros_like(m.narrow(a, 0, 1))
        m = torch.cat([pad, m], dim=a) | torch.cat([m, pad], dim=a)
    return m


def random_solid(shape: tuple[int, ...], fraction: float, gen: torch.Generator) -> torch.Tensor:
    """A random solid mask (bool, ``shape``) with roughly ``fraction`` solid cells, never all solid."""
    solid = torch.rand(shape, generator=gen, dtype=F64) < fraction
    solid.view(-1)[0] = False
    return solid


def stream_velocity(grid: Grid, gen: torch.Generator, amplitude: float = 1.0,
                    solid: torch.Tensor | None = None, dtype: torch.dtype = F64) -> tuple[torch.Tensor, ...]:
    """Random discretely divergence-free face velocity, zero on walls and on faces touching solids."""
    if solid is None:
        solid = torch.zeros(grid.shape, dtype=torch.bool)
    h = grid.spacing
    if grid.ndim == 2:
        nx, ny = grid.shape
        psi = amplitude * (2 * torch.rand((nx + 1, ny + 1), generator=gen, dtype=F64) - 1)
        psi[0, :] = psi[-1, :] = psi[:, 0] = psi[:, -1] = 0.0
        psi[touching(solid, (0, 1))] = 0.0
        u = (psi[:, 1:] - psi[:, :-1]) / h[1]
        v = -(psi[1:, :] - psi[:-1, :]) / h[0]
        vel = (u, v)
    else:
        nx, ny, nz = grid.shape

        def pot(shape, mask, zero_axes):
            a = amplitude * (2 * torch.rand(shape, generator=gen, dtype=F64) - 1)
            for ax in zero_axes:
                a.select(ax, 0).zero_()
                a.select(ax, a.shape[ax] - 1).zero_()
            a[mask] = 0.0
            return a

        ax_ = pot((nx, ny + 1, nz + 1), touching(solid, (1, 2)), (1, 2))
        ay_ = pot((nx + 1, ny, nz + 1), touching(solid, (0, 2)), (0, 2))
        az_ = pot((nx + 1, ny + 1, nz), touching(solid, (0, 1)), (0, 1))
        d = lambda f, a: (f.narrow(a, 1, f.shape[a] - 1) - f.narrow(a, 0, f.shape[a] - 1)) / h[a]  # noqa: E731
        u = d(az_, 1) - d(ay_, 2)
        v = d(ax_, 2) - d(az_, 0)
        w = d(ay_, 0) - d(ax_, 1)
        vel = (u, v, w)
    for a, f in enumerate(vel):
        assert tuple(f.shape) == grid.face_shape(a)
    return tuple(f.to(dtype) for f in vel)


def grid_for(ndim: int) -> Grid:
    """Small anisotropic grids (different spacings per axis catch axis mix-ups)."""
    if ndim == 2:
        return Grid(shape=(12, 9), spacing=(0.25, 0.4))
    return Grid(shape=(7, 6, 5), spacing=(0.3, 0.25, 0.4))
