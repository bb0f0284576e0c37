"""The transport equation ∂c/∂t = −∇·(u c) + ∇·(D∇c) + S and its explicit stability limit."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from closedloop.physics.advection import advect_upwind, boundary_net_flux, muscl_flux, upwind_flux
from closedloop.physics.diffusion import diffuse, diffusive_flux
from closedloop.physics.divergence import divergence
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


@dataclass(frozen=True)
class TransportTerms:
    """The explicit terms of ∂c/∂t = −∇·(u c) + ∇·(D∇c) + s on ``grid``, in flux form.

    ``velocity[a]``, ``diffusivities[a]``: face fields of shape ``grid.face_shape(a)``. Advection by
    MUSCL–van Leer (TVD, ``open_masks[a]`` the faces joining two fluid cells) or, with
    ``open_masks=None``, by first-order upwind.
    """

    grid: Grid
    velocity: tuple[torch.Tensor, ...]
    diffusivities: tuple[torch.Tensor, ...]
    open_masks: tuple[torch.Tensor, ...] | None = None

    def advective_fluxes(self, c: torch.Tensor) -> list[torch.Tensor]:
        """F_a = u_a c_face on the faces normal to each axis."""
        if self.open_masks is not None:
            return [muscl_flux(c, u, self.grid, a, self.open_masks[a]) for a, u in enumerate(self.velocity)]
        return [upwind_flux(c, u, self.grid, a) for a, u in enumerate(self.velocity)]

    def rate(self, c: torch.Tensor, source: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(dc/dt, boundary outflow): dc/dt = −∇·(F_adv + F_dif) + s, a cell field like c; outflow =
        ∮ F_adv·n dA (outward positive), shape ``(*batch,)``, the rate at which mass leaves the box.

        Walls carry no flux, so only inlets and exhausts contribute to the outflow, and ∫dc/dt dV =
        ∫s dV − outflow to round-off (the divergence telescopes).
        """
        adv = self.advective_fluxes(c)
        dif = [diffusive_flux(c, d, self.grid, a) for a, d in enumerate(self.diffusivities)]
        rate = -divergence([fa + fd for fa, fd in zip(adv, dif)], self.grid)
        if source is not None:
            rate = rate + source
        return rate, boundary_net_flux(adv, self.grid)

    def stable_time_step(self, safety: float = 0.9) -> float:
        """The positivity limit of forward Euler (hence SSP-RK2) for these terms (``stable_time_step``)."""
        return stable_time_step(self.velocity, self.diffusivities, self.grid, safety=safety,
                                advection_factor=1.0 if self.open_masks is None else 2.0)
