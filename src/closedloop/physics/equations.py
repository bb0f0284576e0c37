"""The transport equation ∂c/∂t = −∇·(u c) + ∇·(D∇c) + S and its explicit stability limit."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from closedloop.physics.advection import advect_upwind
from closedloop.physics.diffusion import diffuse
from closedloop.physics.grids import Grid


def transport_rate(c: torch.Tensor, velocity: Sequence[torch.Tensor],
                   diffusivities: Sequence[torch.Tensor] | None, source: torch.Tensor | None,
                   grid: Grid) -> torch.Tensor:
    """dc/dt for upwind advection with face velocities, face-diffusivity diffusion and a source."""
    rate = advect_upwind(c, velocity, grid)
    if diffusivities is not None:
        rate = rate + diffuse(c, diffusivities, grid)
    if source is not None:
        rate = rate + source
    return rate


def outflow_coefficient(velocity: Sequence[torch.Tensor] | None,
                        diffusivities: Sequence[torch.Tensor] | None, grid: Grid,
                        advection_factor: float = 1.0) -> torch.Tensor:
    """Per cell, the rate λ_i at which explicit upwind + diffusion drains cell i:

    λ_i = Σ_a [f (u⁺_{i+1/2} − u⁻_{i−1/2}) / h_a + (D_{i−1/2} + D_{i+1/2}) / h_a²],

    with f = 1 for first-order upwind and f = 2 for MUSCL–van Leer, whose outgoing face value is
    at most 2 c_i.
    """
    total = None
    fields = []
    if velocity is not None:
        for axis, u in enumerate(velocity):
            dim = u.ndim - grid.ndim + axis
            n = u.shape[dim] - 1
            fields.append(advection_factor * (u.narrow(dim, 1, n).clamp(min=0) - u.narrow(dim, 0, n).clamp(max=0))
                          / grid.spacing[axis])
    if diffusivities is not None:
        for axis, d in enumerate(diffusivities):
            dim = d.ndim - grid.ndim + axis
            n = d.shape[dim] - 1
            fields.append((d.narrow(dim, 1, n) + d.narrow(dim, 0, n)) / grid.spacing[axis] ** 2)
    for f in fields:
        total = f if total is None else total + f
    if total is None:
        raise ValueError("outflow_coefficient: give a velocity or diffusivities")
    return total


def stable_time_step(velocity: Sequence[torch.Tensor] | None,
                     diffusivities: Sequence[torch.Tensor] | None, grid: Grid,
                     safety: float = 0.9, advection_factor: float = 1.0) -> float:
    """Largest forward-Euler step that keeps upwind advection–diffusion positive and bounded.

    c_i^{n+1} = (1 − Δt λ_i) c_i^n + Δt·(non-negative inflow terms), so Δt ≤ 1/max λ keeps every
    coefficient non-negative (positivity and, for ∇·u = 0, a maximum principle). ``safety`` < 1
    leaves a margin; the limit combines the CFL and the diffusion number in one bound. Use
    ``advection_factor=2`` for the MUSCL–van Leer scheme (``advect_tvd``).
    """
    if not 0 < safety <= 1:
        raise ValueError(f"safety must lie in (0, 1], got {safety}")
    lam = outflow_coefficient(velocity, diffusivities, grid, advection_factor).detach().max().item()
    if lam <= 0:
        return float("inf")
    return safety / lam
