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
from closedloop.physics.poisson import SolveInfo
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
        normal = inlet.velocity_vector()[a]  # signed; points into the room
        ub[a] = ub[a] + normal * mask.to(dtype)
        supply += abs(normal) * mask.sum().item() * grid.face_area(a)
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


class Projector:
    """Helmholtz projection onto discretely divergence-free, wall-respecting face velocities.

    Given any face field u* (boundary faces already holding the vent velocities), solve
    −∇·(m∇φ) = −∇·u* over fluid cells and return u = u* + m∇φ: ∇·u = 0 to the solver tolerance,
    u = 0 on closed faces, boundary faces untouched. Potential flow is the projection of the
    boundary field alone; a projection-method Navier–Stokes solver projects every step.
    """

    def __init__(self, geometry: RoomGeometry, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None):
        self.grid: Grid = geometry.grid
        self.fluid = geometry.fluid.to(device)
        self.fl = self.fluid.to(dtype)
        self.masks = [open_faces(self.fluid, self.grid, a).to(dtype) for a in range(3)]
        g = self.grid
        diag = sum((self.masks[a].narrow(a, 0, g.shape[a]) + self.masks[a].narrow(a, 1, g.shape[a]))
                   / g.spacing[a] ** 2 for a in range(3))
        self.inv_diag = torch.where(diag > 0, 1.0 / diag.clamp_min(1e-300), torch.zeros_like(diag))
        self.max_iter = 200 * sum(g.shape) + 1000

    def apply_laplacian(self, phi: torch.Tensor) -> torch.Tensor:
        """−∇·(m∇φ) on fluid cells (symmetric positive semidefinite)."""
        grads = [face_gradient(phi, self.grid, a, self.masks[a]) for a in range(3)]
        return -divergence(grads, self.grid) * self.fl

    def __call__(self, u_star: tuple[torch.Tensor, ...], rtol: float = 1e-11,
                 phi0: torch.Tensor | None = None) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, SolveInfo]:
        """(u, φ, solve info); ``phi0`` warm-starts CG (steady iterations change φ little)."""
        u_star = tuple(u * self.masks[a] + self._boundary(u, a) for a, u in enumerate(u_star))
        b = divergence(u_star, self.grid) * self.fl
        r0 = b if phi0 is None else b - self.apply_laplacian(phi0)
        dphi, info = conjugate_gradient(self.apply_laplacian, r0, self.inv_diag, rtol=rtol * (
            torch.linalg.vector_norm(b).item() / max(torch.linalg.vector_norm(r0).item(), 1e-300)),
            max_iter=self.max_iter)
        phi = dphi if phi0 is None else phi0 + dphi
        u = tuple(u_star[a] + face_gradient(phi, self.grid, a, self.masks[a]) for a in range(3))
        return u, phi, info

    def _boundary(self, u: torch.Tensor, axis: int) -> torch.Tensor:
        """Keep only the box-boundary faces of u (vents); interior values come from the mask."""
        keep = torch.zeros_like(u)
        n = u.shape[axis]
        keep.narrow(axis, 0, 1).copy_(u.narrow(axis, 0, 1))
        keep.narrow(axis, n - 1, 1).copy_(u.narrow(axis, n - 1, 1))
        return keep


def supply_rate(ub: tuple[torch.Tensor, ...], grid: Grid) -> float:
    """Volume flow (m³/s) entering through the box boundary."""
    return sum(ub[a].select(a, 0).clamp(min=0).sum().item() * grid.face_area(a)
               - ub[a].select(a, grid.shape[a]).clamp(max=0).sum().item() * grid.face_area(a)
               for a in range(3))


def potential_flow(scenario: Scenario, geometry: RoomGeometry, dtype: torch.dtype = torch.float64,
                   rtol: float = 1e-11) -> SteadyFlow:
    """Divergence-free, wall-respecting potential flow for the room's inlets and exhausts."""
    ub = boundary_velocity(scenario, geometry, dtype)
    check_pockets(geometry.fluid, divergence(ub, geometry.grid) * geometry.fluid.to(dtype), geometry.grid)
    velocity, _, info = Projector(geometry, dtype)(ub, rtol=rtol)
    if not info.converged:
        raise RuntimeError(
            f"potential flow did not converge (relative residual {info.residual:.2e} after "
            f"{info.iterations} iterations)")
    return SteadyFlow(velocity=velocity, supply=supply_rate(ub, geometry.grid),  # type: ignore[arg-type]
                      iterations=info.iterations, residual=info.residual)
