"""Discrete divergence of face fields and gradient of cell fields onto faces."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from closedloop.physics.grids import Grid


def divergence(face_fields: Sequence[torch.Tensor], grid: Grid) -> torch.Tensor:
    """∇·F ≈ Σ_a (F_{a,i+1/2} − F_{a,i−1/2}) / h_a, a cell field.

    The finite-volume divergence: its sum times the cell volume telescopes to the net
    boundary flux, which is why every operator built on it conserves mass to round-off.
    """
    out = None
    for axis, flux in enumerate(face_fields):
        dim = grid.axis_dim(flux, axis)
        n = flux.shape[dim] - 1
        term = (flux.narrow(dim, 1, n) - flux.narrow(dim, 0, n)) / grid.spacing[axis]
        out = term if out is None else out + term
    assert out is not None
    return out


def face_gradient(phi: torch.Tensor, grid: Grid, axis: int,
                  open_mask: torch.Tensor | None = None) -> torch.Tensor:
    """∂φ/∂x_a at faces normal to ``axis``: (φ_{i+1} − φ_i)/h on interior faces, 0 on the boundary.

    ``open_mask`` (bool, face shape) zeroes faces that touch solids.
    """
    dim = grid.axis_dim(phi, axis)
    n = phi.shape[dim]
    inner = (phi.narrow(dim, 1, n - 1) - phi.narrow(dim, 0, n - 1)) / grid.spacing[axis]
    edge = torch.zeros_like(phi.narrow(dim, 0, 1))
    grad = torch.cat([edge, inner, edge], dim=dim)
    if open_mask is not None:
        grad = grad * open_mask
    return grad
