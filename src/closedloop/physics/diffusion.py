"""Diffusion with face diffusivities: ∂c/∂t = ∇·(D∇c), F = −D_{i−1/2}(c_i − c_{i−1})/h.

Walls and solid cells carry D = 0 on their faces, so no scalar crosses them; boundary faces of
the box are always closed to diffusion.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from closedloop.physics.divergence import divergence, face_gradient
from closedloop.physics.grids import Grid
from closedloop.physics.masks import open_faces


def face_diffusivity(diffusivity: float | torch.Tensor, fluid: torch.Tensor, grid: Grid,
                     dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    """Face diffusivities from a constant or a cell field, zero on faces touching solids.

    A cell field is averaged harmonically onto faces (the series-resistance value that keeps
    the flux continuous across a jump in D).
    """
    faces = []
    for axis in range(grid.ndim):
        mask = open_faces(fluid, grid, axis).to(dtype)
        if isinstance(diffusivity, torch.Tensor) and diffusivity.ndim > 0:
            k = diffusivity.to(dtype)
            n = grid.shape[axis]
            a, b = k.narrow(axis, 0, n - 1), k.narrow(axis, 1, n - 1)
            inner = 2 * a * b / (a + b).clamp_min(torch.finfo(dtype).tiny)
            edge = torch.zeros_like(k.narrow(axis, 0, 1))
            faces.append(torch.cat([edge, inner, edge], dim=axis) * mask)
        elif isinstance(diffusivity, torch.Tensor):
            faces.append(diffusivity.to(dtype) * mask)  # 0-d tensor: keep it in the autograd graph
        else:
            faces.append(float(diffusivity) * mask)
    return tuple(faces)


def diffusive_flux(c: torch.Tensor, d: torch.Tensor, grid: Grid, axis: int) -> torch.Tensor:
    """−D ∂c/∂x_a on faces normal to ``axis``; zero on the box boundary."""
    return -d * face_gradient(c, grid, axis)


def diffuse(c: torch.Tensor, diffusivities: Sequence[torch.Tensor], grid: Grid) -> torch.Tensor:
    """Rate of change ∇·(D∇c) in flux form (conservative)."""
    fluxes = [diffusive_flux(c, d, grid, a) for a, d in enumerate(diffusivities)]
    return -divergence(fluxes, grid)
