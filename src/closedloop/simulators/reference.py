"""The 3D reference solver: ∂c/∂t + ∇·(u c) = ∇·(K∇c) + S in a room, explicit in time.

Advection on the steady flow's face velocities with MUSCL–van Leer (TVD, default) or first-order
upwind; diffusion with face diffusivities (constant K, or K + ν_t/Sc_t from the Navier–Stokes
eddy viscosity, averaged harmonically onto faces; zero on walls and solids); a static or moving
source switched on over [start, stop). SSP-RK2 (default) or forward Euler with the largest step
that keeps the scheme positive (``physics.stable_time_step``), shortened to land exactly on output
times and source switches. The mass budget (in domain, emitted, exhausted) is integrated with the
same stages as c, so it closes to round-off.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from closedloop.physics.kernels import Kernel, single_thread
from closedloop.physics import (boundary_net_flux, diffusive_flux, divergence, face_diffusivity, muscl_flux,
                                open_faces, stable_time_step, upwind_flux)
from closedloop.simulators.devices import resolve_device
from closedloop.simulators.flow_cache import steady_flow
from closedloop.simulators.geometry import room_geometry, source_weights
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
    snapshots: dict[float, torch.Tensor] = field(default_factory=dict)  # t -> (nx, ny, nz)
    extra: dict = field(default_factory=dict)


ProgressFn = Callable[[float, float], None]


def eddy_diffusivity_field(scenario: Scenario, nu_t: torch.Tensor | None, fluid: torch.Tensor) -> float | torch.Tensor:
    """K as a constant or as the cell field K₀ + ν_t/Sc_t (zero in solids)."""
    if scenario.diffusivity.model == "constant":
        return scenario.eddy_diffusivity
    assert nu_t is not None, "eddy_viscosity diffusivity needs a Navier–Stokes flow"
    return (scenario.eddy_diffusivity + nu_t / scenario.diffusivity.turbulent_schmidt) * fluid


def simulate(scenario: Scenario, device: str | torch.device = "auto",
             dtype: torch.dtype = torch.float64, progress: ProgressFn | None = None,
             safety: float | None = None, compile: bool | None = None) -> SimulationResult:
    """Run the reference simulation of ``scenario`` and reduce it to plane and probe series.

    ``compile``: fuse each time step into compiled kernels (``physics.kernels``; default from
    ``$CLOSEDLOOP_COMPILE``, off). Same scheme and result up to round-off; the one-time compilation
    is reported in ``extra["compile_seconds"]``, apart from ``wall_seconds``.
    """
    dev = resolve_device(device)
    geometry = room_geometry(scenario)
    grid = geometry.grid
    probes = probe_indices(scenario, geometry)
    t0 = time.perf_counter()
    field_ = steady_flow(scenario, geometry)
    flow_seconds = time.perf_counter() - t0
    num = scenario.numerics
    tvd = num.advection == "tvd"

    velocity = tuple(u.to(device=dev, dtype=dtype) for u in field_.flow.velocity)
    k_field = eddy_diffusivity_field(scenario, field_.eddy_viscosity, geometry.fluid)
    diffusivities = tuple(d.to(device=dev, dtype=dtype) for d in face_diffusivity(k_field, geometry.fluid, grid))
    open_masks = tuple(open_faces(geometry.fluid, grid, a).to(device=dev, dtype=dtype) for a in range(3))
    reduction = plane_reduction(scenario, geometry)
    col_w = reduction.column_weights.to(device=dev, dtype=dtype)
    den = reduction.denominator.to(device=dev, dtype=dtype)
    pmask = reduction.mask.to(dev)
    dt_max = stable_time_step(velocity, diffusivities, grid, safety=safety if safety is not None else num.safety,
                              advection_factor=2.0 if tvd else 1.0)

    src = scenario.source
    static_weights = None if src.is_moving else source_weights(scenario, geometry, src.position, dtype, dev)

    def source_at(t: float) -> torch.Tensor:
        if static_weights is not None:
            return static_weights
        return source_weights(scenario, geometry, src.position_at(t), dtype, dev)

    def fluxes(c: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        if tvd:
            adv = [muscl_flux(c, u, grid, a, open_masks[a]) for a, u in enumerate(velocity)]
        else:
            adv = [upwind_flux(c, u, grid, a) for a, u in enumerate(velocity)]
        dif = [diffusive_flux(c, d, grid, a) for a, d in enumerate(diffusivities)]
        rate = -divergence([fa + fd for fa, fd in zip(adv, dif)], grid)
        return adv, rate

    def stage(c: torch.Tensor, t: float, on: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(dc/dt, boundary outflow rate) at time t."""
        adv, rate = fluxes(c)
        if on:
            rate = rate + src.rate * source_at(t)
        return rate, boundary_net_flux(adv, grid)

    stop = src.stop if src.stop is not None else math.inf
    outputs = scenario.time.output_times()
    snapshot_times = set(scenario.time.snapshots)
    events = sorted(set(outputs) | {t for t in (src.start, stop) if 0 < t < outputs[-1]})

    c = torch.zeros(grid.shape, device=dev, dtype=dtype)
    emitted = 0.0
    exhausted = torch.zeros((), device=dev, dtype=dtype)
    snapshots: dict[float, torch.Tensor] = {}
    rec: dict[str, list] = {"plane": [], "mass": [], "emitted": [], "exhausted": [],
                            **{f"probe:{k}": [] for k in probes}}

    def record(t: float) -> None:
        num_ = (c * col_w).sum(-1)
        rec["plane"].append(torch.where(pmask, num_ / den.clamp_min(1e-300), torch.zeros_like(num_)))
        rec["mass"].append(c.sum() * grid.cell_volume)
        rec["emitted"].append(emitted)
        rec["exhausted"].append(exhausted.clone())
        for name, idx in probes.items():
            rec[f"probe:{name}"].append(c[idx])
        if any(abs(t - s) < 1e-9 * max(1.0, s) for s in snapshot_times):
            snapshots[t] = c.detach().cpu().clone()

    rk2 = num.time_stepping == "ssp_rk2"

    def fused_step(c: torch.Tensor, dt: torch.Tensor, s0: torch.Tensor, s1: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step with sources s0 (at t) and s1 (at t + Δt): (c^{n+1}, mass exhausted over it)."""
        adv0, r0 = fluxes(c)
        r0 = r0 + s0
        out0 = boundary_net_flux(adv0, grid)
        if not rk2:
            return c + dt * r0, dt * out0
        c1 = c + dt * r0
        adv1, r1 = fluxes(c1)
        r1 = r1 + s1
        return 0.5 * c + 0.5 * (c1 + dt * r1), 0.5 * dt * (out0 + boundary_net_flux(adv1, grid))

    kernel = Kernel(fused_step, enabled=compile)
    no_source = torch.zeros_like(c)
    static_rate = None if static_weights is None else src.rate * static_weights
    dts: dict[float, torch.Tensor] = {}  # Δt as 0-d tensors: a compiled step is not rebuilt per value

    t, steps = 0.0, 0
    # a compiled step runs on one thread: inductor bakes the OpenMP team size in at compile time, and on a
    # shared CPU a stalled barrier cost 60x (physics.kernels.single_thread)
    with single_thread(kernel.compiled and dev.type == "cpu"):
        wall0 = time.perf_counter()
        record(0.0)
        for target in events[1:]:
            while target - t > 1e-9 * max(1.0, target):
                dt = min(dt_max, target - t)
                on = src.start <= t + 0.5 * dt < stop
                if kernel.compiled:
                    s0 = (static_rate if static_rate is not None else src.rate * source_at(t)) if on else no_source
                    s1 = (src.rate * source_at(t + dt) if src.is_moving else s0) if on and rk2 else no_source
                    dt_t = dts.get(dt)
                    if dt_t is None:
                        dt_t = dts.setdefault(dt, torch.tensor(dt, dtype=dtype, device=dev)) if len(dts) < 64 \
                            else torch.tensor(dt, dtype=dtype, device=dev)
                    c, out = kernel(c, dt_t, s0, s1)
                    exhausted = exhausted + out
                else:
                    r0, out0 = stage(c, t, on)
                    if rk2:
                        c1 = c + dt * r0
                        r1, out1 = stage(c1, t + dt, on)
                        c = 0.5 * c + 0.5 * (c1 + dt * r1)
                        exhausted = exhausted + 0.5 * dt * (out0 + out1)
                    else:
                        c = c + dt * r0
                        exhausted = exhausted + dt * out0
                if on:
                    emitted += src.rate * dt
                t += dt
                steps += 1
            t = target
            if any(abs(target - o) < 1e-9 * max(1.0, o) for o in outputs):
                record(t)
                if progress is not None:
                    progress(t, outputs[-1])
            if not torch.isfinite(c).all():
                raise FloatingPointError(f"reference solution became non-finite at t = {t:.3f} s")

    wall = time.perf_counter() - wall0
    compile_seconds = 0.0
    if kernel.compiled and kernel.first_call_seconds is not None:
        # the first call compiled the step; count it apart (a step costs about wall / steps)
        compile_seconds = max(0.0, kernel.first_call_seconds - wall / max(steps, 1))
        wall -= compile_seconds
    as_t = lambda xs: torch.stack([torch.as_tensor(x, dtype=dtype, device=dev) for x in xs]).cpu()  # noqa: E731
    return SimulationResult(
        times=torch.tensor(outputs, dtype=torch.float64),
        plane=torch.stack(rec["plane"]).cpu(),
        plane_mask=reduction.mask.clone(),
        probes={k: as_t(rec[f"probe:{k}"]) for k in probes},
        mass_in_domain=as_t(rec["mass"]), mass_emitted=as_t(rec["emitted"]),
        mass_exhausted=as_t(rec["exhausted"]), steps=steps, dt=dt_max, wall_seconds=wall,
        flow_seconds=flow_seconds, device=str(dev), dtype=str(dtype).removeprefix("torch."),
        snapshots=snapshots,
        extra={"flow_iterations": field_.flow.iterations, "flow_residual": field_.flow.residual,
               "flow_cached": field_.cached, "flow_key": field_.key, "flow_model": scenario.flow.model,
               "advection": num.advection, "time_stepping": num.time_stepping,
               "supply_m3_per_s": field_.flow.supply, "grid_shape": list(grid.shape),
               "compiled": kernel.compiled, "compile_seconds": compile_seconds,
               "compile_fallback": kernel.fallback_reason if kernel.requested else None},
    )
