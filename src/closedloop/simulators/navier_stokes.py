"""Steady incompressible Navier–Stokes flow of a room with a mixing-length eddy viscosity.

    ∂u/∂τ + (u·∇)u = −∇p + ∇·(ν_eff ∇u),   ∇·u = 0,   ν_eff = ν + ν_t,   ν_t = l_m² |S|,

marched in pseudo-time τ to its steady state by a projection method on the MAC grid:

    u* = uⁿ + Δτ [−∇·(u u_a) + ∇·(ν_eff ∇u_a)]   on the face-centred control volume of each u_a,
    uⁿ⁺¹ = P u*                                   (``flow.Projector``: ∇·u = 0, u = 0 on solid faces).

With one Δτ for every face, a fixed point u = P(u + Δτ R(u)) means P R(u) = 0, i.e. R(u) = ∇p:
exactly the steady equations (the pressure is φ/Δτ). Δτ only sets the path, not the answer, and
so does Anderson acceleration of the fixed-point iteration (5–10× fewer steps). Starts from the
potential flow.

Discretisation (robustness over accuracy: cell Reynolds numbers U h/ν_eff are O(10–100)):
- convection: first-order upwind in flux form; on a discretely divergence-free field it equals
  the advective form (u·∇)u_a and keeps explicit Euler monotone under the CFL limit;
- diffusion: ∇·(ν_eff ∇u_a) (the ∂_b(ν_t ∂_a u_b) part of the stress, zero for constant ν_eff,
  is left out); ν_eff at cell centres for fluxes along a, the mean of the four cells round an edge
  for fluxes along b ≠ a;
- walls and solid surfaces: no slip by a mirrored ghost value (u_ghost = −u, the wall shear
  2ν_eff u/h) where both cells on the far side of an edge are solid or outside the box; inlets
  prescribe their tangential velocity (zero, or the tangential part of a tilted inlet's
  ``velocity_vector``: ghost 2u_t − u, and u_t carried in by the inflow); exhausts let tangential
  velocity leave with zero gradient. Normal velocities on the box boundary are
  ``boundary_velocity``'s.
- eddy viscosity: |S| = √(2 S_ij S_ij) at cell centres from the cell-centred velocity (exact
  ∂_a U_a, central differences across with zero velocity in solids and outside the box);
  l_m = min(κ d, l_max), d the distance of the cell centre to the nearest wall.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from closedloop.physics import Grid, divergence, open_faces
from closedloop.simulators.anderson import Anderson
from closedloop.simulators.flow import Projector, SteadyFlow, boundary_velocity, check_pockets, supply_rate
from closedloop.simulators.geometry import RoomGeometry, vent_faces
from closedloop.simulators.scenario import Scenario

ProgressFn = Callable[[int, float], None]  # (iteration, residual)


@dataclass(frozen=True)
class NavierStokesSettings:
    """Model constants and pseudo-time controls.

    ``mixing_length`` caps l_m (m); ``None`` takes 0.1 × the room's smallest dimension (0.3 m
    for a 3 m high room): free shear layers have l_m ≈ 0.07–0.1 × their width, and the widest
    layer a room holds spans its smallest dimension. Near walls κd (κ = 0.41) takes over.
    ``tolerance`` bounds the steady residual max|∂u/∂τ|·L/U² (U the fastest inlet, L the room's
    largest dimension): the flow changes by less than ``tolerance``·U per flow-through time L/U.
    ``anderson`` mixes the last steps (Anderson acceleration; it changes the path, not the fixed
    point). ``step_rtol`` is loose because the projection error of a step is a fraction of that
    step's change of φ, which vanishes at the steady state; the returned step is projected to
    ``projection_rtol``. ``cfl`` ≤ ½ keeps plain explicit Euler monotone (see ``pseudo_time_step``).
    """

    viscosity: float = 1.5e-5  # molecular ν of air (m²/s)
    von_karman: float = 0.41
    mixing_length: float | None = None
    cfl: float = 0.5  # of the combined convective + viscous explicit limit
    max_iterations: int = 3000
    tolerance: float = 1e-4
    projection_rtol: float = 1e-10  # CG tolerance relative to ‖∇·u*‖ for the final step
    step_rtol: float = 0.1  # while marching: CG tolerance relative to the warm start's residual
    check_every: int = 10  # iterations between residual checks (and Δτ updates)
    eddy_ramp: int = 0  # iterations over which ν_t is blended in from zero (0: at once)
    anderson: int = 8  # Anderson-acceleration depth of the pseudo-time fixed point (0: plain)

    def __post_init__(self) -> None:
        for name in ("viscosity", "cfl", "tolerance", "projection_rtol"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"NavierStokesSettings.{name}: must be positive and finite, got {v}")
        if not self.cfl <= 1:
            raise ValueError(f"NavierStokesSettings.cfl: must lie in (0, 1], got {self.cfl}")
        if self.mixing_length is not None and not (self.mixing_length >= 0 and math.isfinite(self.mixing_length)):
            raise ValueError(f"NavierStokesSettings.mixing_length: must be ≥ 0, got {self.mixing_length}")
        if self.von_karman < 0:
            raise ValueError(f"NavierStokesSettings.von_karman: must be ≥ 0, got {self.von_karman}")
        if self.max_iterations < 1 or self.check_every < 1 or self.eddy_ramp < 0:
            raise ValueError("NavierStokesSettings: max_iterations and check_every must be ≥ 1, eddy_ramp ≥ 0")


# ------------------------------------------------------------------------------ eddy viscosity
def _pad(x: torch.Tensor, axis: int, value: float = 0.0) -> torch.Tensor:
    """One entry of ``value`` on both ends of ``axis`` (3D fields)."""
    pad = [0] * 6
    pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = 1
    return F.pad(x, pad, value=value)


def _mean_along(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Mean of neighbours along ``axis``, zero-padded: cells → faces (n → n + 1)."""
    p = _pad(x, axis)
    n = x.shape[axis] + 1
    return 0.5 * (p.narrow(axis, 0, n) + p.narrow(axis, 1, n))


def wall_distance(geometry: RoomGeometry) -> torch.Tensor:
    """Distance (m) from each fluid cell centre to the nearest wall or solid surface; 0 in solids.

    Euclidean distance transform (scipy, once per geometry) to the nearest solid cell centre,
    the box padded with a layer of solid (vents count as wall), minus half a cell: a cell next
    to a wall gets d = h/2.
    """
    from scipy import ndimage

    grid = geometry.grid
    padded = F.pad(geometry.fluid.to(torch.uint8), (1, 1, 1, 1, 1, 1)).cpu().numpy()
    edt = ndimage.distance_transform_edt(padded, sampling=grid.spacing)[1:-1, 1:-1, 1:-1]
    d = torch.from_numpy(edt).to(torch.float64) - 0.5 * min(grid.spacing)
    return torch.where(geometry.fluid, d.clamp_min(0), torch.zeros_like(d))


def mixing_length(geometry: RoomGeometry, settings: NavierStokesSettings) -> torch.Tensor:
    """l_m = min(κ d, l_max) on fluid cells (m), zero in solids."""
    cap = settings.mixing_length
    if cap is None:
        cap = 0.1 * min(geometry.grid.size)
    return (settings.von_karman * wall_distance(geometry)).clamp(max=cap)


def cell_velocity(velocity: tuple[torch.Tensor, ...], grid: Grid) -> tuple[torch.Tensor, ...]:
    """Cell-centred velocity: the mean of the two faces of each cell along each axis."""
    return tuple(0.5 * (u.narrow(a, 0, grid.shape[a]) + u.narrow(a, 1, grid.shape[a]))
                 for a, u in enumerate(velocity))


def strain_rate(velocity: tuple[torch.Tensor, ...], grid: Grid) -> torch.Tensor:
    """|S| = √(2 S_ij S_ij) at cell centres, S_ij = ½(∂_j U_i + ∂_i U_j).

    ∂_a U_a is the exact face difference; ∂_b U_a (b ≠ a) the central difference of the
    cell-centred U_a with zero velocity in solid cells and outside the box.
    """
    cells = cell_velocity(velocity, grid)
    total = None
    for a, u in enumerate(velocity):
        n = grid.shape[a]
        d = (u.narrow(a, 1, n) - u.narrow(a, 0, n)) / grid.spacing[a]
        total = 2 * d * d if total is None else total + 2 * d * d
    grads = {}
    for a in range(3):
        for b in range(3):
            if a != b:
                p = _pad(cells[a], b)
                n = grid.shape[b]
                grads[a, b] = (p.narrow(b, 2, n) - p.narrow(b, 0, n)) / (2 * grid.spacing[b])
    for a, b in ((0, 1), (0, 2), (1, 2)):
        s = grads[a, b] + grads[b, a]  # 2 S_ab
        total = total + s * s  # 2 (S_ab² + S_ba²) = (2 S_ab)²
    assert total is not None
    return total.sqrt()


def eddy_viscosity(velocity: tuple[torch.Tensor, ...], grid: Grid, length: torch.Tensor) -> torch.Tensor:
    """Prandtl's mixing-length model ν_t = l_m² |S| (m²/s), zero where l_m is (solids)."""
    return length * length * strain_rate(velocity, grid)


# ------------------------------------------------------------------------------ momentum
class Momentum:
    """Rate of change of each face velocity component, −∇·(u u_a) + ∇·(ν_eff ∇u_a).

    Precomputes, per component a and cross axis b, the wall factor w on the edges (a-faces ×
    b-faces) that scales the viscous flux −ν_eff w ∂_b u_a: 1 between fluid faces, 2 where the
    far side is a wall (mirrored ghost, no slip), 0 on exhaust faces (zero tangential gradient),
    and the boundary value of u_a beyond the box along b (an inlet's tangential velocity, else 0).
    Rates are zero on faces that are not open (box boundary, touching solids): those are fixed.
    """

    def __init__(self, scenario: Scenario, geometry: RoomGeometry, dtype: torch.dtype,
                 device: torch.device | str | None):
        self.grid = grid = geometry.grid
        fluid = geometry.fluid
        solid = (~fluid).to(dtype)
        self.open = [open_faces(fluid, grid, a).to(device=device, dtype=dtype) for a in range(3)]
        exhaust = [torch.zeros(grid.face_shape(a), dtype=dtype) for a in range(3)]
        for ex in scenario.exhausts:
            exhaust[ex.normal_axis] += vent_faces(ex, geometry).to(dtype)
        self.wall: dict[tuple[int, int], torch.Tensor] = {}
        for a in range(3):
            # both cells astride each a-face are solid (outside the box counts as solid)
            ps = _pad(solid, a, 1.0)
            na = grid.shape[a] + 1
            pair = ps.narrow(a, 0, na) * ps.narrow(a, 1, na)  # face_shape(a)
            for b in range(3):
                if b == a:
                    continue
                pp = _pad(pair, b, 1.0)
                nb = grid.shape[b] + 1
                w = 1.0 + torch.maximum(pp.narrow(b, 0, nb), pp.narrow(b, 1, nb))
                # exhaust faces on the b-boundary: zero tangential gradient
                e = _mean_along(exhaust[b], a)  # a-faces × b-faces × c-cells
                w = w * (1.0 - e)
                self.wall[a, b] = w.to(device)
        # the tangential velocity prescribed on the box boundary: zero on walls, the tangential
        # part of a tilted inlet's velocity on its faces; ghost values beyond the box along b
        self.ghost: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        for a in range(3):
            for b in range(3):
                if b == a:
                    continue
                t = torch.zeros(grid.face_shape(b), dtype=dtype)
                for inlet in scenario.inlets:
                    if inlet.normal_axis == b:
                        t = t + inlet.velocity_vector()[a] * vent_faces(inlet, geometry).to(dtype)
                t = _mean_along(t, a)  # at the edges of the a-faces on the b-boundary
                nb = grid.shape[b]
                self.ghost[a, b] = (t.narrow(b, 0, 1).to(device), t.narrow(b, nb, 1).to(device))

    def __call__(self, velocity: tuple[torch.Tensor, ...], viscosity: float,
                 nu_t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(du_a/dτ for a = 0, 1, 2) given face velocities, ν and the cell field ν_t."""
        grid = self.grid
        h = grid.spacing
        nu_cell = viscosity + nu_t
        nu_edge = {}
        for a, b in ((0, 1), (0, 2), (1, 2)):
            # ν_t outside the box is zero (it vanishes at walls); ν is molecular everywhere
            nu_edge[a, b] = nu_edge[b, a] = viscosity + _mean_along(_mean_along(nu_t, a), b)
        rates = []
        for a, u in enumerate(velocity):
            n = grid.shape[a]
            lo, hi = u.narrow(a, 0, n), u.narrow(a, 1, n)
            v = 0.5 * (lo + hi)  # advecting velocity at cell centres
            flux = v.clamp(min=0) * lo + v.clamp(max=0) * hi - nu_cell * (hi - lo) / h[a]
            rate = _pad(-(flux.narrow(a, 1, n - 1) - flux.narrow(a, 0, n - 1)) / h[a], a)
            for b in range(3):
                if b == a:
                    continue
                vb = _mean_along(velocity[b], a)  # u_b at the edges (a-faces × b-faces)
                lo_ghost, hi_ghost = self.ghost[a, b]  # boundary values: inflow and no-slip
                pu = torch.cat([lo_ghost, u, hi_ghost], dim=b)
                nb = grid.shape[b] + 1
                left, right = pu.narrow(b, 0, nb), pu.narrow(b, 1, nb)
                conv = vb.clamp(min=0) * left + vb.clamp(max=0) * right  # upwind
                flux = conv - nu_edge[a, b] * self.wall[a, b] * (right - left) / h[b]
                rate = rate - (flux.narrow(b, 1, nb - 1) - flux.narrow(b, 0, nb - 1)) / h[b]
            rates.append(rate * self.open[a])
        return tuple(rates)


def _with_boundary(u: torch.Tensor, ub: torch.Tensor, axis: int) -> torch.Tensor:
    """``u`` with its box-boundary faces along ``axis`` replaced by those of ``ub``."""
    u = u.clone()
    n = u.shape[axis]
    for side in (0, n - 1):
        u.narrow(axis, side, 1).copy_(ub.narrow(axis, side, 1))
    return u


def pseudo_time_step(velocity: tuple[torch.Tensor, ...], nu_max: float, grid: Grid, cfl: float) -> float:
    """Δτ = cfl / (Σ_a max|u_a|/h_a + Σ_a 2 ν_max/h_a²).

    The face's diagonal coefficient is at most twice the bracket (upwind outflow ≤ 2|u|/h per
    axis, wall ghosts raise 2ν/h² to 4ν/h²), so cfl ≤ ½ keeps explicit Euler monotone.
    """
    lam = sum(u.abs().max().item() / h for u, h in zip(velocity, grid.spacing))
    lam += sum(2.0 * nu_max / h ** 2 for h in grid.spacing)
    return cfl / lam


def starting_flow(initial: SteadyFlow | None, project: Projector, momentum: Momentum, ub: tuple[torch.Tensor, ...],
                  tight: float, grid: Grid, dtype: torch.dtype, device: torch.device | str | None
                  ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """(velocity, φ) to march from: the potential flow, or ``initial`` with walls and vents set
    (the first step then projects it tightly, φ being unknown)."""
    if initial is None:
        velocity, phi, info = project(ub, rtol=tight)
        if not info.converged:
            raise RuntimeError(f"navier_stokes_flow: the potential flow did not converge "
                               f"(relative residual {info.residual:.2e})")
        return velocity, phi
    velocity = tuple(_with_boundary(u.to(device=device, dtype=dtype) * momentum.open[a], b, a)
                     for a, (u, b) in enumerate(zip(initial.velocity, ub)))
    return velocity, torch.zeros(grid.shape, dtype=dtype, device=device)


class ProjectionStep:
    """One pseudo-time step u ← P(u + Δτ R(u)), with ν_t ramped in over ``eddy_ramp`` steps.

    Except on a ``final`` step, the projection solves only for the change of φ, to a fraction of
    that change: the error shrinks with the steady residual, so it cannot stall the iteration, and
    CG stays short.
    """

    def __init__(self, settings: NavierStokesSettings, grid: Grid, length: torch.Tensor, momentum: Momentum,
                 project: Projector, tight: float):
        self.s, self.grid, self.length, self.momentum, self.project, self.tight = (
            settings, grid, length, momentum, project, tight)

    def __call__(self, u: tuple[torch.Tensor, ...], phi: torch.Tensor, dtau: float, it: int, final: bool
                 ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        s, grid, project = self.s, self.grid, self.project
        ramp = 1.0 if s.eddy_ramp == 0 else min(1.0, (it + 1) / s.eddy_ramp)
        nu_t = ramp * eddy_viscosity(u, grid, self.length)
        rates = self.momentum(u, s.viscosity, nu_t)
        u_star = tuple(x + dtau * r for x, r in zip(u, rates))
        if not final:
            b = divergence(u_star, grid) * project.fl
            r0 = b - project.apply_laplacian(phi)
            b_norm = torch.linalg.vector_norm(b).item()
            rtol = max(s.step_rtol * torch.linalg.vector_norm(r0).item() / max(b_norm, 1e-300), self.tight)
        else:
            rtol = self.tight
        new, phi, _ = project(u_star, rtol=rtol, phi0=phi)
        return new, phi, nu_t


# ------------------------------------------------------------------------------ the solver
def navier_stokes_flow(scenario: Scenario, geometry: RoomGeometry,
                       settings: NavierStokesSettings | None = None, dtype: torch.dtype = torch.float64,
                       device: torch.device | str | None = None, progress: ProgressFn | None = None,
                       initial: SteadyFlow | None = None) -> tuple[SteadyFlow, torch.Tensor]:
    """March the room's flow to its steady state; returns (flow, ν_t).

    ``flow.velocity`` are face velocities (divergence-free on fluid cells to the projection
    tolerance, zero on faces touching solids and on walls, vent velocities on vents),
    ``flow.iterations`` the pseudo-time steps taken, ``flow.residual`` the final steady residual
    max|∂u/∂τ|·L/U² (below ``settings.tolerance`` when converged; a warning otherwise). ν_t is
    the cell-centred eddy viscosity (m²/s, ``grid.shape``, zero in solids). Starts from the
    potential flow, or from ``initial`` (e.g. an earlier result). ``progress(iteration, residual)``
    is called at each residual check. (The pseudo-time loop stays in one piece: its residual
    checks, Δτ updates and Anderson mixing share the iteration's state.)
    """
    s = settings if settings is not None else NavierStokesSettings()
    grid = geometry.grid
    ub = tuple(u.to(device=device) for u in boundary_velocity(scenario, geometry, dtype))
    check_pockets(geometry.fluid, divergence(tuple(u.cpu() for u in ub), grid) * geometry.fluid.to(dtype), grid)
    supply = supply_rate(ub, grid)
    fluid = geometry.fluid.to(device=device)
    project = Projector(geometry, dtype, device)
    momentum = Momentum(scenario, geometry, dtype, device)
    length = mixing_length(geometry, s).to(device=device, dtype=dtype)
    speed = max(i.speed for i in scenario.inlets)
    scale = max(grid.size) / speed ** 2  # residual = max|∂u/∂τ| · L / U²

    tight = max(s.projection_rtol, 100 * torch.finfo(dtype).eps)  # reachable in float32 too
    velocity, phi = starting_flow(initial, project, momentum, ub, tight, grid, dtype, device)
    step = ProjectionStep(s, grid, length, momentum, project, tight)

    def change(new: tuple[torch.Tensor, ...], old: tuple[torch.Tensor, ...], dtau: float) -> float:
        return max((n - o).abs().max().item() for n, o in zip(new, old)) / dtau * scale

    nu_t = eddy_viscosity(velocity, grid, length)
    dtau = pseudo_time_step(velocity, s.viscosity + nu_t.max().item(), grid, s.cfl)
    residual = math.inf
    it = 0
    finishing = False  # the next step projects tightly; if it is steady too, it is the answer
    mixer = Anderson(s.anderson) if s.anderson > 0 else None
    while True:
        final = finishing or it == s.max_iterations - 1
        cold = it == 0 and initial is not None  # no φ to warm-start from
        new, new_phi, nu_t = step(velocity, phi, dtau, it, final or cold)
        it += 1
        if final or it == 1 or it % s.check_every == 0:
            residual = change(new, velocity, dtau)
            if not math.isfinite(residual):
                raise FloatingPointError(f"navier_stokes_flow: the flow became non-finite at iteration {it}")
            if progress is not None:
                progress(it, residual)
            if final and (residual <= s.tolerance or it >= s.max_iterations):
                velocity = new
                break
            finishing = residual <= s.tolerance
            new_dtau = pseudo_time_step(new, s.viscosity + nu_t.max().item(), grid, s.cfl)
            if abs(new_dtau / dtau - 1) > 0.1:
                new_phi = new_phi * (new_dtau / dtau)  # φ = Δτ p: keep the warm start consistent
                dtau = new_dtau
                if mixer is not None:
                    mixer.reset()  # a new Δτ is a new fixed-point map
        if mixer is None:
            velocity, phi = new, new_phi
        else:
            velocity, phi = mixer(velocity, new, new_phi)
    if residual > s.tolerance:
        warnings.warn(f"navier_stokes_flow: not steady after {it} iterations (residual {residual:.2e} > "
                      f"tolerance {s.tolerance:.1e})", RuntimeWarning, stacklevel=2)
    nu_t = eddy_viscosity(velocity, grid, length) * fluid.to(dtype)
    flow = SteadyFlow(velocity=velocity, supply=supply, iterations=it, residual=residual)  # type: ignore[arg-type]
    return flow, nu_t
