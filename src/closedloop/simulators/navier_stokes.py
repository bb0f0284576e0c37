"""Steady incompressible Navier–Stokes flow of a room with a mixing-length eddy viscosity.

    ∂u/∂τ + (u·∇)u = −∇p + ∇·(ν_eff ∇u),   ∇·u = 0,   ν_eff = ν + ν_t,   ν_t = l_m² |S|,

marched in pseudo-time τ to its steady state by a projection method on the MAC grid:

    u* = uⁿ + Δτ [−∇·(u u_a) + ∇·(ν_eff ∇u_a)]   on the face-centred control volume of each u_a,
    uⁿ⁺¹ = P u*                                   (``flow.Projector``: ∇·u = 0, u = 0 on solid faces).

With one Δτ for every face, a fixed point u = P(u + Δτ R(u)) means P R(u) = 0, i.e. R(u) = ∇p:
exactly the steady equations (the pressure is φ/Δτ). Δτ only sets the path, not the answer.

Discretisation (robustness over accuracy: cell Reynolds numbers U h/ν_eff are O(10–100)):
- convection: first-order upwind in flux form; on a discretely divergence-free field it equals
  the advective form (u·∇)u_a and keeps explicit Euler monotone under the CFL limit;
- diffusion: ∇·(ν_eff ∇u_a) (the ∂_b(ν_t ∂_a u_b) part of the stress, zero for constant ν_eff,
  is left out); ν_eff at cell centres for fluxes along a, the mean of the four cells round an edge
  for fluxes along b ≠ a;
- walls and solid surfaces: no slip by a mirrored ghost value (u_ghost = −u, the wall shear
  2ν_eff u/h) where both cells on the far side of an edge are solid or outside the box; inlets
  blow with zero tangential velocity (same ghost); exhausts let tangential velocity leave with
  zero gradient. Normal velocities on the box boundary are ``boundary_velocity``'s.
- eddy viscosity: |S| = √(2 S_ij S_ij) at cell centres from the cell-centred velocity (exact
  ∂_a U_a, central differences across with zero velocity in solids and outside the box);
  l_m = min(κ d, l_max), d the distance of the cell centre to the nearest wall.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from closedloop.physics import Grid, divergence, open_faces, upwind_flux
from closedloop.simulators.flow import Projector, SteadyFlow, boundary_velocity, check_pockets, supply_rate
from closedloop.simulators.geometry import RoomGeometry, vent_faces
from closedloop.simulators.scenario import Scenario

ProgressFn = Callable[[int, float], None]  # (iteration, residual)


@dataclass(frozen=True)
class NavierStokesSettings:
    """Model constants and pseudo-time controls.

    ``mixing_length`` caps l_m (m); ``None`` takes 0.1 × the room's smallest dimension (0.3 m
    for a 3 m high room), the usual outer-layer limit l_m ≈ 0.2 δ with a boundary layer of half
    the room height. ``tolerance`` bounds the steady residual max|∂u/∂τ|·L/U² (U the fastest
    inlet, L the room's largest dimension): the flow stops changing by more than
    ``tolerance``·U per flow-through time L/U.
    """

    viscosity: float = 1.5e-5  # molecular ν of air (m²/s)
    von_karman: float = 0.41
    mixing_length: float | None = None
    cfl: float = 0.5  # of the combined convective + viscous explicit limit
    max_iterations: int = 3000
    tolerance: float = 1e-3
    projection_rtol: float = 1e-10  # CG tolerance relative to ‖∇·u*‖ for the final step
    step_rtol: float = 1e-6  # the same while marching: leftover divergence is removed next step
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
                pad = [0] * 6
                pad[2 * (2 - b)] = pad[2 * (2 - b) + 1] = 1
                p = F.pad(cells[a], pad)
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


class Momentum:
    """Rate of change of each face velocity component, −∇·(u u_a) + ∇·(ν_eff ∇u_a).

    Precomputes, per component a and cross axis b, the wall factor w on the edges (a-faces ×
    b-faces) that scales the viscous flux −ν_eff w ∂_b u_a: 1 between fluid faces, 2 where the
    far side is a wall (mirrored ghost, no slip), 0 on exhaust faces (zero tangential gradient).
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

    def __call__(self, velocity: tuple[torch.Tensor, ...], nu_cell: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(du_a/dτ for a = 0, 1, 2) given face velocities and the cell field ν_eff."""
        grid = self.grid
        h = grid.spacing
        nu_edge = {}
        for a, b in ((0, 1), (0, 2), (1, 2)):
            nu_edge[a, b] = nu_edge[b, a] = _mean_along(_mean_along(nu_cell, a), b)
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
                conv = upwind_flux(u, vb, grid, b)  # ghost 0: no tangential inflow at vents
                pu = _pad(u, b)
                nb = grid.shape[b] + 1
                grad = (pu.narrow(b, 1, nb) - pu.narrow(b, 0, nb)) / h[b]
                flux = conv - nu_edge[a, b] * self.wall[a, b] * grad
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


class Anderson:
    """Anderson acceleration (type II) of a fixed-point iteration x ← G(x) on face-velocity tuples.

    With f = G(x) − x and the last ``depth`` differences ΔF, ΔG, it returns
    G(x) − ΔG γ, γ = argmin ‖f − ΔF γ‖₂: an affine combination of recent G outputs, so it keeps
    their divergence-free, wall-respecting structure. Restarts when the residual jumps.
    """

    def __init__(self, depth: int, restart_growth: float = 10.0):
        self.depth = depth
        self.restart_growth = restart_growth
        self.reset()

    def reset(self) -> None:
        self.df: list[torch.Tensor] = []
        self.dg: list[torch.Tensor] = []
        self.prev: tuple[torch.Tensor, torch.Tensor] | None = None
        self.best = math.inf

    def __call__(self, x: tuple[torch.Tensor, ...], g: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        shapes = [t.shape for t in g]
        xf = torch.cat([t.reshape(-1) for t in x])
        gf = torch.cat([t.reshape(-1) for t in g])
        f = gf - xf
        norm = torch.linalg.vector_norm(f).item()
        if norm > self.restart_growth * self.best:
            self.reset()
        self.best = min(self.best, norm)
        if self.prev is not None:
            self.df.append(f - self.prev[0])
            self.dg.append(gf - self.prev[1])
            if len(self.df) > self.depth:
                self.df.pop(0)
                self.dg.pop(0)
        self.prev = (f, gf)
        if not self.df:
            return g
        dfm = torch.stack(self.df, dim=1)
        gram = dfm.T @ dfm
        gram = gram + 1e-10 * gram.diagonal().max() * torch.eye(len(self.df), dtype=gram.dtype, device=gram.device)
        gamma = torch.linalg.solve(gram, dfm.T @ f)
        out = gf - torch.stack(self.dg, dim=1) @ gamma
        return tuple(t.reshape(shape) for t, shape in zip(out.split([math.prod(s) for s in shapes]), shapes))


def pseudo_time_step(velocity: tuple[torch.Tensor, ...], nu_max: float, grid: Grid, cfl: float) -> float:
    """Δτ = cfl / (Σ_a max|u_a|/h_a + Σ_a 2 ν_max/h_a²).

    The face's diagonal coefficient is at most twice the bracket (upwind outflow ≤ 2|u|/h per
    axis, wall ghosts raise 2ν/h² to 4ν/h²), so cfl ≤ ½ keeps explicit Euler monotone.
    """
    lam = sum(u.abs().max().item() / h for u, h in zip(velocity, grid.spacing))
    lam += sum(2.0 * nu_max / h ** 2 for h in grid.spacing)
    return cfl / lam


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
    is called at each residual check.
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

    if initial is None:
        velocity, phi, info = project(ub, rtol=s.projection_rtol)
    else:
        start = tuple(_with_boundary(u.to(device=device, dtype=dtype), b, a)
                      for a, (u, b) in enumerate(zip(initial.velocity, ub)))
        velocity, phi, info = project(start, rtol=s.projection_rtol)
    if not info.converged:
        raise RuntimeError(f"navier_stokes_flow: initial projection did not converge "
                           f"(relative residual {info.residual:.2e})")

    def step(u: tuple[torch.Tensor, ...], phi: torch.Tensor, dtau: float, it: int, rtol: float):
        ramp = 1.0 if s.eddy_ramp == 0 else min(1.0, (it + 1) / s.eddy_ramp)
        nu_t = ramp * eddy_viscosity(u, grid, length)
        rates = momentum(u, s.viscosity + nu_t)
        new, phi, _ = project(tuple(x + dtau * r for x, r in zip(u, rates)), rtol=rtol, phi0=phi)
        return new, phi, nu_t

    def change(new: tuple[torch.Tensor, ...], old: tuple[torch.Tensor, ...], dtau: float) -> float:
        return max((n - o).abs().max().item() for n, o in zip(new, old)) / dtau * scale

    nu_t = eddy_viscosity(velocity, grid, length)
    dtau = pseudo_time_step(velocity, s.viscosity + nu_t.max().item(), grid, s.cfl)
    residual = math.inf
    it = 0
    mixer = Anderson(s.anderson) if s.anderson > 0 else None
    while it < s.max_iterations - 1:
        new, phi, nu_t = step(velocity, phi, dtau, it, s.step_rtol)
        it += 1
        if it % s.check_every == 0:
            residual = change(new, velocity, dtau)
            if not math.isfinite(residual):
                raise FloatingPointError(f"navier_stokes_flow: the flow became non-finite at iteration {it}")
            if progress is not None:
                progress(it, residual)
            if residual <= s.tolerance:
                velocity = new
                break
            new_dtau = pseudo_time_step(new, s.viscosity + nu_t.max().item(), grid, s.cfl)
            if abs(new_dtau / dtau - 1) > 0.1:
                phi = phi * (new_dtau / dtau)  # φ = Δτ p: keep the warm start consistent
                dtau = new_dtau
                if mixer is not None:
                    mixer.reset()  # a new Δτ is a new fixed-point map
        velocity = new if mixer is None else mixer(velocity, new)
    # a last step with the tight projection: its result is returned, its change is the residual
    new, phi, nu_t = step(velocity, phi, dtau, it, s.projection_rtol)
    residual = change(new, velocity, dtau)
    velocity = new
    it += 1
    if residual > s.tolerance:
        warnings.warn(f"navier_stokes_flow: not steady after {it} iterations (residual {residual:.2e} > "
                      f"tolerance {s.tolerance:.1e})", RuntimeWarning, stacklevel=2)
    nu_t = eddy_viscosity(velocity, grid, length) * fluid.to(dtype)
    flow = SteadyFlow(velocity=velocity, supply=supply, iterations=it, residual=residual)  # type: ignore[arg-type]
    return flow, nu_t
