"""Steady incompressible flow for a room: potential flow from a pressure Poisson solve.

u = ∇φ on faces between fluid cells, u·n prescribed at inlets (−speed into the room) and
exhausts (outflow balancing the supply), u·n = 0 on walls and solids. Mass conservation in
every fluid cell, Σ_faces u·n A = 0, gives the discrete Neumann problem

    −∇·(m ∇φ) = ∇·u_b      (m: open-face mask, u_b: boundary face velocities),

symmetric positive semidefinite, solved by Jacobi-preconditioned CG. The result satisfies
∇·u = 0 to the solver tolerance and u·n = 0 on solids exactly (closed faces carry no velocity).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from closedloop.physics import Grid, conjugate_gradient, divergence, face_gradient, open_faces
from closedloop.simulators.geometry import RoomGeometry, vent_faces
from closedloop.simulators.scenario import Scenario


@dataclass(frozen=True)
class SteadyFlow:
    velocity: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # face velocities (m/s)
    supply: float  # volume flow in through inlets (m³/s)
    iterations: int
    residual: float


def boundary_velocity(scenario: Scenario, geometry: RoomGeometry,
                      dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    """Face velocities on the box boundary: inlets push in, exhausts take the balance out."""
    grid = geometry.grid
    ub = [torch.zeros(grid.face_shape(a), dtype=dtype) for a in range(3)]
    supply = 0.0
    for i, inlet in enumerate(scenario.inlets):
        mask = vent_faces(inlet, geometry)
        if not mask.any():
            raise ValueError(f"inlets.{i}: the opening covers no fluid face of the room")
        a = inlet.normal_axis
        inward = 1.0 if inlet.face[1] == "-" else -1.0
        ub[a] = ub[a] + inward * inlet.speed * mask.to(dtype)
        supply += inlet.speed * mask.sum().item() * grid.face_area(a)
    exhaust_masks = []
    area = 0.0
    for i, ex in enumerate(scenario.exhausts):
        mask = vent_faces(ex, geometry)
        if not mask.any():
            raise ValueError(f"exhausts.{i}: the opening covers no fluid face of the room")
        exhaust_masks.append((ex, mask))
        area += mask.sum().item() * grid.face_area(ex.normal_axis)
    speed = supply / area
    for ex, mask in exhaust_masks:
        a = ex.normal_axis
        outward = -1.0 if ex.face[1] == "-" else 1.0
        ub[a] = torch.where(mask, torch.as_tensor(outward * speed, dtype=dtype), ub[a])
    return tuple(ub)


def check_pockets(fluid: torch.Tensor, net_inflow: torch.Tensor, grid: Grid) -> None:
    """Each connected fluid region must balance its own inflow and outflow (else no steady flow).

    Uses scipy.ndimage.label (face connectivity, as in the FV stencil).
    """
    from scipy import ndimage

    labels, n = ndimage.label(fluid.cpu().numpy())
    if n <= 1:
        return
    lab = torch.from_numpy(labels)
    scale = net_inflow.abs().sum().item() * grid.cell_volume
    for k in range(1, n + 1):
        region = lab == k
        imbalance = net_inflow[region].sum().item() * grid.cell_volume
        if abs(imbalance) > 1e-9 * max(scale, 1e-300):
            idx = region.nonzero()[0].tolist()
            raise ValueError(f"obstacles: they cut off a fluid pocket (e.g. cell {idx}) whose inlets and "
                             f"exhausts do not balance ({imbalance:+.3g} m³/s); no steady flow exists")


def potential_flow(scenario: Scenario, geometry: RoomGeometry, dtype: torch.dtype = torch.float64,
                   rtol: float = 1e-11) -> SteadyFlow:
    """Divergence-free, wall-respecting potential flow for the room's inlets and exhausts."""
    grid: Grid = geometry.grid
    fluid = geometry.fluid
    fl = fluid.to(dtype)
    masks = [open_faces(fluid, grid, a).to(dtype) for a in range(3)]
    ub = boundary_velocity(scenario, geometry, dtype)

    def apply_a(phi: torch.Tensor) -> torch.Tensor:
        grads = [face_gradient(phi, grid, a, masks[a]) for a in range(3)]
        return -divergence(grads, grid) * fl

    b = divergence(ub, grid) * fl
    check_pockets(fluid, b, grid)
    diag = sum((masks[a].narrow(a, 0, grid.shape[a]) + masks[a].narrow(a, 1, grid.shape[a]))
               / grid.spacing[a] ** 2 for a in range(3))
    inv_diag = torch.where(diag > 0, 1.0 / diag.clamp_min(1e-300), torch.zeros_like(diag))
    phi, info = conjugate_gradient(apply_a, b, inv_diag, rtol=rtol, max_iter=200 * sum(grid.shape) + 1000)
    if not info.converged:
        raise RuntimeError(
            f"potential flow did not converge (relative residual {info.residual:.2e} after "
            f"{info.iterations} iterations); is a fluid pocket with an inlet cut off from every "
            "exhaust?")
    velocity = tuple(face_gradient(phi, grid, a, masks[a]) + ub[a] for a in range(3))
    supply = sum(ub[a].select(a, 0).clamp(min=0).sum().item() * grid.face_area(a)
                 - ub[a].select(a, grid.shape[a]).clamp(max=0).sum().item() * grid.face_area(a)
                 for a in range(3))
    return SteadyFlow(velocity=velocity, supply=supply,  # type: ignore[arg-type]
                      iterations=info.iterations, residual=info.residual)
