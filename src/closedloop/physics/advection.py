"""First-order upwind advection in flux form.

F_{i−1/2} = u⁺ c_{i−1} + u⁻ c_i   (u⁺ = max(u, 0), u⁻ = min(u, 0)),   ∂c/∂t = −∇·F.

Boundary faces carry the prescribed face velocity (zero on walls, non-zero at inlets and
exhausts); the value upwind of an inflow face is ``inflow_value`` (clean supply air: 0).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from closedloop.physics.divergence import divergence
from closedloop.physics.grids import Grid


def upwind_flux(c: torch.Tensor, u: torch.Tensor, grid: Grid, axis: int,
                inflow_value: float = 0.0) -> torch.Tensor:
    """Advective flux c·u on the faces normal to ``axis`` (per unit face area)."""
    dim = grid.axis_dim(c, axis)
    ghost = torch.full_like(c.narrow(dim, 0, 1), inflow_value)
    padded = torch.cat([ghost, c, ghost], dim=dim)
    n = c.shape[dim] + 1
    left, right = padded.narrow(dim, 0, n), padded.narrow(dim, 1, n)
    return u.clamp(min=0) * left + u.clamp(max=0) * right


def advect_upwind(c: torch.Tensor, velocity: Sequence[torch.Tensor], grid: Grid,
                  inflow_value: float = 0.0) -> torch.Tensor:
    """Rate of change −∇·(u c) with first-order upwind face values."""
    fluxes = [upwind_flux(c, u, grid, a, inflow_value) for a, u in enumerate(velocity)]
    return -divergence(fluxes, grid)


def boundary_net_flux(fluxes: Sequence[torch.Tensor], grid: Grid) -> torch.Tensor:
    """Σ over the box's boundary faces of F·n·A (outward positive), shape ``(*batch,)``.

    By the divergence theorem this equals −d/dt ∫c dV of the flux-form update, so a mass budget
    built from it closes to round-off.
    """
    total = None
    for axis, flux in enumerate(fluxes):
        dim = grid.axis_dim(flux, axis)
        n = flux.shape[dim]
        out = flux.narrow(dim, n - 1, 1) - flux.narrow(dim, 0, 1)
        reduce_dims = tuple(range(flux.ndim - grid.ndim, flux.ndim))
        rate = out.sum(dim=reduce_dims) * grid.face_area(axis)
        total = rate if total is None else total + rate
    assert total is not None
    return total


def boundary_outflow(c: torch.Tensor, velocity: Sequence[torch.Tensor], grid: Grid,
                     inflow_value: float = 0.0) -> torch.Tensor:
    """Net advective mass per second leaving the domain through inlets/exhausts, ``(*batch,)``."""
    return boundary_net_flux([upwind_flux(c, u, grid, a, inflow_value)
                              for a, u in enumerate(velocity)], grid)
