"""The 3D reference solver: ∂c/∂t + ∇·(u c) = ∇·(K∇c) + S in a room, explicit in time.

First-order upwind advection on the steady potential flow, constant eddy diffusivity K on
fluid faces, a static source switched on over [start, stop). Forward Euler with the largest
step that keeps the scheme positive (CFL and diffusion limits together, see
``physics.stable_time_step``), shortened to land exactly on output times and source switches.
The mass budget (in domain, emitted, exhausted) is tracked alongside and closes to round-off.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from closedloop.physics import (boundary_net_flux, diffusive_flux, divergence, face_diffusivity,
                                stable_time_step, upwind_flux)
from closedloop.simulators.devices import resolve_device
from closedloop.simulators.flow import potential_flow
from closedloop.simulators.geometry import room_geometry, source_distribution
from closedloop.simulators.plane import plane_reduction, probe_indices
from closedloop.simulators.scenario import Scenario


@dataclass
class SimulationResult:
    """Outputs at ``times`` (s): the band-averaged plane field and probe values."""

    times: torch.Tensor  # (T,)
    plane: torch.Tensor  # (T, nx, ny)
    plane_mask: torch.Tensor  # (nx, ny) bool
    probes: dict[str, torch.Tensor]  # name -> (T,)
    mass_in_domain: torch.Tensor  # (T,)
    mass_emitted: torch.Tensor  # (T,)
    mass_exhausted: torch.Tensor  # (T,)
    steps: int
    dt: float
    wall_seconds: float
    flow_seconds: float
    device: str
    dtype: str
    extra: dict = field(default_factory=dict)


ProgressFn = Callable[[float, float], None]


def simulate(scenario: Scenario, device: str | torch.device = "auto",
             dtype: torch.dtype = torch.float64, progress: ProgressFn | None = None,
             safety: float = 0.9) -> SimulationResult:
    """Run the reference simulation of ``scenario`` and reduce it to plane and probe series."""
    dev = resolve_device(device)
    geometry = room_geometry(scenario)
    grid = geometry.grid
    probes = probe_indices(scenario, geometry)
    t0 = time.perf_counter()
    flow = potential_flow(scenario, geometry)
    flow_seconds = time.perf_counter() - t0

    velocity = tuple(u.to(device=dev, dtype=dtype) for u in flow.velocity)
    diffusivities = tuple(d.to(device=dev, dtype=dtype) for d in
                          face_diffusivity(scenario.eddy_diffusivity, geometry.fluid, grid))
    unit_source = source_distribution(scenario, geometry).to(device=dev, dtype=dtype)
    reduction = plane_reduction(scenario, geometry)
    col_w = reduction.column_weights.to(device=dev, dtype=dtype)
    den = reduction.denominator.to(device=dev, dtype=dtype)
    pmask = reduction.mask.to(dev)
    dt_max = stable_time_step(velocity, diffusivities, grid, safety=safety)

    src = scenario.source
    stop = src.stop if src.stop is not None else math.inf
    outputs = scenario.time.output_times()
    events = sorted(set(outputs) | {t for t in (src.start, stop) if 0 < t < outputs[-1]})

    c = torch.zeros(grid.shape, device=dev, dtype=dtype)
    emitted = 0.0
    exhausted = torch.zeros((), device=dev, dtype=dtype)
    rec: dict[str, list] = {"plane": [], "mass": [], "emitted": [], "exhausted": [],
                            **{f"probe:{k}": [] for k in probes}}

    def record() -> None:
        num = (c * col_w).sum(-1)
        rec["plane"].append(torch.where(pmask, num / den.clamp_min(1e-300), torch.zeros_like(num)))
        rec["mass"].append(c.sum() * grid.cell_volume)
        rec["emitted"].append(emitted)
        rec["exhausted"].append(exhausted.clone())
        for name, idx in probes.items():
            rec[f"probe:{name}"].append(c[idx])

    t, steps = 0.0, 0
    wall0 = time.perf_counter()
    record()
    for target in events[1:]:
        while target - t > 1e-9 * max(1.0, target):
            dt = min(dt_max, target - t)
            active = src.start <= t + 0.5 * dt < stop
            adv = [upwind_flux(c, u, grid, a) for a, u in enumerate(velocity)]
            dif = [diffusive_flux(c, d, grid, a) for a, d in enumerate(diffusivities)]
            rate = -divergence([fa + fd for fa, fd in zip(adv, dif)], grid)
            if active:
                rate = rate + src.rate * unit_source
                emitted += src.rate * dt
            exhausted = exhausted + dt * boundary_net_flux(adv, grid)
            c = c + dt * rate
            t += dt
            steps += 1
        t = target
        if any(abs(target - o) < 1e-9 * max(1.0, o) for o in outputs):
            record()
            if progress is not None:
                progress(t, outputs[-1])
        if not torch.isfinite(c).all():
            raise FloatingPointError(f"reference solution became non-finite at t = {t:.3f} s")

    wall = time.perf_counter() - wall0
    as_t = lambda xs: torch.stack([torch.as_tensor(x, dtype=dtype, device=dev) for x in xs]).cpu()  # noqa: E731
    return SimulationResult(
        times=torch.tensor(outputs, dtype=torch.float64),
        plane=torch.stack(rec["plane"]).cpu(),
        plane_mask=reduction.mask.clone(),
        probes={k: as_t(rec[f"probe:{k}"]) for k in probes},
        mass_in_domain=as_t(rec["mass"]), mass_emitted=as_t(rec["emitted"]),
        mass_exhausted=as_t(rec["exhausted"]), steps=steps, dt=dt_max, wall_seconds=wall,
        flow_seconds=flow_seconds, device=str(dev), dtype=str(dtype).removeprefix("torch."),
        extra={"flow_iterations": flow.iterations, "flow_residual": flow.residual,
               "supply_m3_per_s": flow.supply, "grid_shape": list(grid.shape)},
    )
