"""The 3D reference solver: ∂c/∂t + ∇·(u c) = ∇·(K∇c) + S in a room, explicit in time.

Advection on the steady flow's face velocities with MUSCL–van Leer (TVD, default) or first-order
upwind; diffusion with face diffusivities (constant K, or K + ν_t/Sc_t from the Navier–Stokes
eddy viscosity, averaged harmonically onto faces; zero on walls and solids); a static or moving
source switched on over [start, stop). SSPRK(s,2) (default, s = ``SSP_RK2_STAGES``) or forward Euler with
the largest step that keeps the scheme positive (C × ``physics.stable_time_step``, C the scheme's SSP
coefficient), shortened to land exactly on output
times and source switches. The mass budget (in domain, emitted, exhausted) is integrated with the
same stages as c, so it closes to round-off.

Composed of: the terms (``transport_terms`` → ``physics.TransportTerms``: dc/dt and the boundary
outflow), the source (``simulators.sources``), one step (``ReferenceStep``: a ``physics.steppers``
scheme, eager or compiled), the time loop (``physics.integrator``) and the outputs
(``simulators.recorder``).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from closedloop.physics import TransportTerms, face_diffusivity, open_faces
from closedloop.physics.integrator import integrate, is_event
from closedloop.physics.kernels import Kernel, compile_wanted, single_thread
from closedloop.physics.steppers import Stepper
from closedloop.simulators.budget import check_size
from closedloop.simulators.devices import resolve_device
from closedloop.simulators.flow_cache import FlowField, steady_flow
from closedloop.simulators.geometry import RoomGeometry, check_connected, room_geometry
from closedloop.simulators.plane import plane_reduction, probe_indices
from closedloop.simulators.recorder import Recorder
from closedloop.simulators.scenario import Scenario
from closedloop.simulators.sources import SourceTerm


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
    cpu_seconds: float | None = None  # CPU time of the whole simulation (flow and transport), all threads
    simulator: str = "builtin"  # who produced it (simulators/interface.py) and its version
    simulator_version: str = ""


ProgressFn = Callable[[float, float], None]


def eddy_diffusivity_field(scenario: Scenario, nu_t: torch.Tensor | None, fluid: torch.Tensor) -> float | torch.Tensor:
    """K as a constant or as the cell field K₀ + ν_t/Sc_t (zero in solids)."""
    if scenario.diffusivity.model == "constant":
        return scenario.eddy_diffusivity
    assert nu_t is not None, "eddy_viscosity diffusivity needs a Navier–Stokes flow"
    return (scenario.eddy_diffusivity + nu_t / scenario.diffusivity.turbulent_schmidt) * fluid


def transport_terms(scenario: Scenario, geometry: RoomGeometry, flow: FlowField, device: torch.device,
                    dtype: torch.dtype) -> TransportTerms:
    """The room's terms of ∂c/∂t = −∇·(u c) + ∇·(K∇c): the flow's face velocities (3 × face shape),
    face diffusivities from ``eddy_diffusivity_field``, MUSCL–van Leer or upwind per ``numerics.advection``."""
    grid, fluid = geometry.grid, geometry.fluid
    k_field = eddy_diffusivity_field(scenario, flow.eddy_viscosity, fluid)
    open_masks = None
    if scenario.numerics.advection == "tvd":
        open_masks = tuple(open_faces(fluid, grid, a).to(device=device, dtype=dtype) for a in range(grid.ndim))
    return TransportTerms(
        grid=grid, velocity=tuple(u.to(device=device, dtype=dtype) for u in flow.flow.velocity),
        diffusivities=tuple(d.to(device=device, dtype=dtype) for d in face_diffusivity(k_field, fluid, grid)),
        open_masks=open_masks)


COMPILE_MIN_CELL_STEPS = 2e7
"""Two-stage cell updates from which a run compiles its step by default: about 3 s of eager transport on
a 2-core CPU (~150 ns a cell and two stages), the cost of one compilation whose kernel inductor already
has on disk. The hall (12,740 cells × 1,680 steps × 4 stages) compiles; the smoke room stays eager."""


def compile_by_default(cells: int, steps: int, compile: bool | None = None, stages: int = 2) -> bool:
    """Whether a run of ``steps`` time steps of ``stages`` evaluations on ``cells`` cells fuses its step:
    ``compile`` when given, else ``$CLOSEDLOOP_COMPILE`` when set, else only when the run is large
    enough to pay for compiling (``cells × steps × stages/2 ≥ COMPILE_MIN_CELL_STEPS``). A process
    compiles once per grid; later runs on that grid (other sources, diffusivities, flows) reuse the
    kernel, and inductor caches it on disk."""
    if compile is not None:
        return bool(compile)
    return compile_wanted(cells * steps * stages / 2 >= COMPILE_MIN_CELL_STEPS)


class RunState(NamedTuple):
    """The reference's state: c (nx, ny, nz), mass exhausted X (0-d tensor), mass emitted E (float)."""

    c: torch.Tensor
    exhausted: torch.Tensor
    emitted: float


class ReferenceStep:
    """One time step (state, t, Δt) ↦ state: ``stepper`` on ``terms`` with the source at its stage times.

    c and X advance by the same stages (``physics.steppers``), E by q Δt when the step emits.
    ``compile``: the stages run fused in one compiled kernel (``physics.kernels``), the same stepper;
    Δt is then passed as a 0-d tensor and a silent source as zeros, so the kernel is built once.
    """

    def __init__(self, terms: TransportTerms, source: SourceTerm, stepper: Stepper, like: torch.Tensor,
                 compile: bool | None = None) -> None:
        self.terms, self.source, self.stepper = terms, source, stepper
        self.kernel = Kernel(self.advance, enabled=compile)
        self._zeros = torch.zeros_like(like)
        self._dts: dict[float, torch.Tensor] = {}

    def advance(self, c: torch.Tensor, dt: float | torch.Tensor, *forcings: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(cⁿ⁺¹, exhausted over the step): the fusable tensor arithmetic of one step."""
        return self.stepper.step(self.terms.rate, c, dt, forcings)

    def _dt_tensor(self, dt: float) -> torch.Tensor:
        dt_t = self._dts.get(dt)
        if dt_t is None:
            dt_t = torch.tensor(dt, dtype=self._zeros.dtype, device=self._zeros.device)
            if len(self._dts) < 64:
                self._dts[dt] = dt_t
        return dt_t

    def __call__(self, state: RunState, t: float, dt: float) -> RunState:
        compiled = self.kernel.compiled
        forcings = self.source.stage_forcings(t, dt, self.stepper.stage_times, self._zeros if compiled else None)
        c, out = self.kernel(state.c, self._dt_tensor(dt) if compiled else dt, *forcings)
        return RunState(c, state.exhausted + out, state.emitted + self.source.emitted(t, dt))


def simulate(scenario: Scenario, device: str | torch.device = "auto",
             dtype: torch.dtype = torch.float64, progress: ProgressFn | None = None,
             safety: float | None = None, compile: bool | None = None, max_memory_gb: float | None = None,
             max_cells: int | None = None) -> SimulationResult:
    """Run the reference simulation of ``scenario`` and reduce it to plane and probe series.

    The terms (``transport_terms``) and the source (``SourceTerm``) advance by
    ``numerics.time_stepping`` (``physics.steppers``) at the stable step, landing on every output
    and source switch (``physics.integrator``); a ``Recorder`` keeps the outputs. ``compile``: fuse
    each time step into compiled kernels (``physics.kernels``; by default when the run is large enough
    to pay for compiling, ``compile_by_default``; eager where it cannot compile). Same scheme and result up to round-off; the one-time compilation is reported in
    ``extra["compile_seconds"]``, apart from ``wall_seconds``. A scenario whose estimated memory is
    over ``max_memory_gb`` (default half of this machine's) or ``max_cells`` is refused first
    (:class:`~closedloop.simulators.budget.ScenarioTooLarge`), before anything is allocated.
    """
    check_size(scenario, max_memory_gb, max_cells, dtype)
    dev = resolve_device(device)
    geometry = room_geometry(scenario)
    check_connected(scenario, geometry)
    probes = probe_indices(scenario, geometry)
    t0 = time.perf_counter()
    flow = steady_flow(scenario, geometry)
    flow_seconds = time.perf_counter() - t0
    terms = transport_terms(scenario, geometry, flow, dev, dtype)
    stepper = scenario.numerics.stepper()
    dt_max = stepper.ssp_coefficient * terms.stable_time_step(safety if safety is not None else scenario.numerics.safety)
    source = SourceTerm(scenario, geometry, dtype, dev)
    outputs = scenario.time.output_times()
    events = sorted(set(outputs) | source.switch_times(outputs[-1]))
    reduction = plane_reduction(scenario, geometry)
    recorder = Recorder(reduction, probes, geometry.grid.cell_volume, scenario.time.snapshots, dtype, dev)
    c0 = torch.zeros(geometry.grid.shape, device=dev, dtype=dtype)
    state = RunState(c0, torch.zeros((), device=dev, dtype=dtype), 0.0)
    fused = compile_by_default(math.prod(geometry.grid.shape), math.ceil(outputs[-1] / dt_max), compile, stepper.stages)
    step = ReferenceStep(terms, source, stepper, c0, fused)

    def at_event(state: RunState, t: float) -> None:
        if is_event(t, outputs):
            recorder.record(t, state.c, state.emitted, state.exhausted)
            if progress is not None:
                progress(t, outputs[-1])
        if not torch.isfinite(state.c).all():
            raise FloatingPointError(f"reference solution became non-finite at t = {t:.3f} s")

    # a compiled step runs on one thread: inductor bakes the OpenMP team size in at compile time, and on a
    # shared CPU a stalled barrier cost 60x (physics.kernels.single_thread)
    with single_thread(step.kernel.compiled and dev.type == "cpu"):
        wall0 = time.perf_counter()
        recorder.record(0.0, state.c, state.emitted, state.exhausted)
        _, steps = integrate(step, state, events[1:], dt_max, at_event)
    wall, compile_seconds = _split_compile_time(step.kernel, time.perf_counter() - wall0, steps)
    mass, emitted, exhausted = recorder.masses()
    return SimulationResult(
        times=torch.tensor(outputs, dtype=torch.float64), plane=recorder.plane(), plane_mask=reduction.mask.clone(),
        probes=recorder.probes(), mass_in_domain=mass, mass_emitted=emitted, mass_exhausted=exhausted,
        steps=steps, dt=dt_max, wall_seconds=wall, flow_seconds=flow_seconds, device=str(dev),
        dtype=str(dtype).removeprefix("torch."), snapshots=recorder.snapshots,
        extra=_provenance(scenario, geometry, flow, step.kernel, compile_seconds))


def _split_compile_time(kernel: Kernel, wall: float, steps: int) -> tuple[float, float]:
    """(transport wall time, compile time): a compiled kernel's first call is counted apart."""
    if not (kernel.compiled and kernel.first_call_seconds is not None):
        return wall, 0.0
    # the first call compiled the step; count it apart (a step costs about wall / steps)
    compile_seconds = max(0.0, kernel.first_call_seconds - wall / max(steps, 1))
    return wall - compile_seconds, compile_seconds


def _provenance(scenario: Scenario, geometry: RoomGeometry, flow: FlowField, kernel: Kernel,
                compile_seconds: float) -> dict:
    """``SimulationResult.extra``: the flow solve, the numerics and the compiled kernel."""
    num = scenario.numerics
    return {"flow_iterations": flow.flow.iterations, "flow_residual": flow.flow.residual,
            "flow_cached": flow.cached, "flow_key": flow.key, "flow_model": scenario.flow.model,
            "advection": num.advection, "time_stepping": num.time_stepping, "stages": num.stepper().stages,
            "supply_m3_per_s": flow.flow.supply, "grid_shape": list(geometry.grid.shape),
            "compiled": kernel.compiled, "compile_seconds": compile_seconds,
            "compile_fallback": kernel.fallback_reason if kernel.requested else None}
