"""Scenario → plane problem: the plane grid, its mask, the band-mean forcing and the model spec.

The surrogate's model sees only tensors; this module, which may import simulators/, projects
a 3D scenario onto the plane: ū = band mean of the face velocities of the steady flow, S̄ = band
mean of the source density, K for the initial diffusivity; optionally the room layers below and
above the band (``room_layers``, surrogates/layers.py), lumped from the same 3D flow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from closedloop.physics import Grid, divergence, face_diffusivity
from closedloop.simulators.flow_cache import FlowField, flow_key, steady_flow
from closedloop.simulators.geometry import RoomGeometry, room_geometry, source_distribution
from closedloop.simulators.plane import PlaneReduction, band_reduction, plane_reduction
from closedloop.simulators.reference import eddy_diffusivity_field
from closedloop.simulators.scenario import Scenario
from closedloop.surrogates.forcing import Forcing
from closedloop.surrogates.layers import LayerForcing
from closedloop.surrogates.model import SurrogateSpec


@dataclass
class PlaneProblem:
    forcing: Forcing  # batch of one
    mask: torch.Tensor  # (nx, ny) bool
    spacing: tuple[float, float]
    output_interval: float
    n_steps: int
    eddy_diffusivity: float
    air_exchange_rate: float = 0.0  # Q/V (1/s): supply flow over the room's fluid volume
    layer_heights: tuple[float, float, float] | None = None  # (h_lo, h_band, h_hi) with room layers

    def geometry_key(self) -> tuple:
        return (tuple(self.mask.shape), self.spacing, self.output_interval, self.mask.sum().item())


def band_mean_diffusivity(scenario: Scenario, geometry: RoomGeometry, field_: FlowField,
                          red: PlaneReduction) -> float:
    """K projected on the plane: the mean over the band's fluid cells of K = K₀ (+ ν_t/Sc_t)."""
    k = eddy_diffusivity_field(scenario, field_.eddy_viscosity, geometry.fluid)
    if not isinstance(k, torch.Tensor):
        return float(k)
    return red.average(k)[red.mask].mean().item()


def band_faces(scenario: Scenario, geometry: RoomGeometry) -> tuple[int, int]:
    """Indices of the horizontal faces nearest the band's bottom and top."""
    dz, nz = geometry.grid.spacing[2], geometry.grid.shape[2]
    k0 = min(max(round(scenario.plane.z_min / dz), 0), nz - 1)
    k1 = min(max(round(scenario.plane.z_max / dz), k0 + 1), nz)
    return k0, k1


def vertical_outflow_rate(scenario: Scenario, geometry: RoomGeometry, flow_w: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
    """How fast the steady flow leaves the band [z_min, z_max] through its top and bottom faces,
    per unit band height (1/s): (max(w_top, 0) + max(−w_bot, 0)) / h, per column.

    Where the band-mean flow converges (∇·ū < 0) the air leaves vertically; a flux-form 2D model
    without this term would pile the scalar up there."""
    k0, k1 = band_faces(scenario, geometry)
    h = (k1 - k0) * geometry.grid.spacing[2]
    top, bot = flow_w[:, :, k1], flow_w[:, :, k0]
    return (top.clamp_min(0) + (-bot).clamp_min(0)) / h * mask


def room_layers(scenario: Scenario, geometry: RoomGeometry, field_: FlowField
                ) -> tuple[LayerForcing, tuple[float, float, float]]:
    """The room below and above the band lumped to one cell each in the vertical (batch of one).

    The layers are [0, z_k0] and [z_k1, H] with k0, k1 the band's faces (``band_faces``). Face
    velocities and diffusivities are layer means per unit height (the lumped fluxes of the 3D
    scheme); w is the 3D vertical velocity at the floor, band bottom, band top and ceiling; the
    conductance across a band face is K there over the distance between layer centres.
    """
    grid = geometry.grid
    dz, nz = grid.spacing[2], grid.shape[2]
    k0, k1 = band_faces(scenario, geometry)
    heights = (k0 * dz, (k1 - k0) * dz, (nz - k1) * dz)
    if heights[0] <= 0 or heights[2] <= 0:
        raise ValueError(f"plane: the band [{scenario.plane.z_min}, {scenario.plane.z_max}] m leaves no room "
                         "below or above it for room_layers")
    flow = field_.flow
    k = eddy_diffusivity_field(scenario, field_.eddy_viscosity, geometry.fluid)
    kx, ky, kz = face_diffusivity(k, geometry.fluid, grid)
    reds = [band_reduction(geometry, 0.0, k0 * dz), band_reduction(geometry, k1 * dz, nz * dz)]
    w = flow.velocity[2][:, :, [0, k0, k1, nz]].permute(2, 0, 1)
    gap_lo, gap_hi = 0.5 * (heights[0] + heights[1]), 0.5 * (heights[1] + heights[2])
    conductance = torch.stack([kz[:, :, k0] / gap_lo, kz[:, :, k1] / gap_hi])
    layers = LayerForcing(ux=torch.stack([r.average_faces(flow.velocity[0]) for r in reds])[None],
                          uy=torch.stack([r.average_faces(flow.velocity[1]) for r in reds])[None],
                          dx=torch.stack([r.average_faces(kx) for r in reds])[None],
                          dy=torch.stack([r.average_faces(ky) for r in reds])[None],
                          w=w[None], conductance=conductance[None],
                          mask=torch.stack([r.mask for r in reds]).to(w.dtype)[None])
    return layers, heights  # type: ignore[return-value]


def layer_divergence(layers: LayerForcing, band_velocity: tuple[torch.Tensor, torch.Tensor],
                     spacing: tuple[float, float], heights: tuple[float, float, float]) -> torch.Tensor:
    """h ∇·ū + w_top − w_bottom per layer column, (B, 3, nx, ny): zero where the 3D flow is
    divergence-free (the check that the lumped layers conserve volume)."""
    grid = Grid(shape=tuple(layers.mask.shape[-2:]), spacing=spacing)  # type: ignore[arg-type]
    vel = [(layers.ux[:, 0], layers.uy[:, 0]), band_velocity, (layers.ux[:, 1], layers.uy[:, 1])]
    out = []
    for j, (v, h) in enumerate(zip(vel, heights)):
        out.append(h * divergence(list(v), grid) + layers.w[:, j + 1] - layers.w[:, j])
    return torch.stack(out, dim=1)


def air_exchange_rate(scenario: Scenario, geometry: RoomGeometry) -> float:
    """Q/V: the supply inlets' volume flow (speed × area) over the fluid volume, in 1/s."""
    q = sum(inlet.speed * inlet.size[0] * inlet.size[1] for inlet in scenario.inlets)
    return q / (geometry.fluid.sum().item() * geometry.grid.cell_volume)


def source_series(scenario: Scenario, geometry: RoomGeometry, red: PlaneReduction,
                  samples_per_interval: int = 10) -> torch.Tensor:
    """Interval means S̄_n of the band-mean source density, (N, nx, ny), for any source.

    Over interval n the on-part [max(t_n, start), min(t_n + Δt, stop)) is sampled at
    ``samples_per_interval`` midpoints; each sampled pattern carries exactly the rate (the weights
    are normalised), so the mass per interval, rate × on-time, is exact, and for a moving source
    the pattern is the mean over the path walked in that interval.
    """
    src, timing = scenario.source, scenario.time
    dt = timing.output_interval
    stop = src.stop if src.stop is not None else float("inf")
    static = None if src.is_moving else red.average(source_distribution(scenario, geometry))
    out = []
    for n in range(timing.n_outputs):
        a, b = max(n * dt, src.start), min((n + 1) * dt, stop)
        if b <= a:
            out.append(torch.zeros(red.mask.shape, dtype=torch.float64))
            continue
        if static is not None:
            mean = static
        else:
            times = [a + (j + 0.5) * (b - a) / samples_per_interval for j in range(samples_per_interval)]
            mean = sum(red.average(source_distribution(scenario, geometry, t=t)) for t in times) / len(times)
        out.append(mean * src.rate * (b - a) / dt)
    return torch.stack(out)


def plane_problem(scenario: Scenario, dtype: torch.dtype = torch.float64,
                  flows: dict[str, FlowField] | None = None, time_series: bool = False,
                  layers: bool | None = None) -> PlaneProblem:
    """The plane forcing of one scenario; ``flows`` (by flow key) shares one flow solve across a batch.

    A moving source (or ``time_series=True``) gives the forcing a ``source_series`` of interval means;
    ``layers`` adds the room below and above the band (``room_layers``); None (the default) adds it
    whenever the band leaves room below and above it, so that any model can be evaluated on it.
    """
    geometry = room_geometry(scenario)
    key = flow_key(scenario)
    if flows is not None and key in flows:
        field_ = flows[key]
    else:
        field_ = steady_flow(scenario, geometry)
        if flows is not None:
            flows[key] = field_
    flow = field_.flow
    red = plane_reduction(scenario, geometry)
    ux = red.average_faces(flow.velocity[0])
    uy = red.average_faces(flow.velocity[1])
    src = red.average(source_distribution(scenario, geometry) * scenario.source.rate)
    stop = scenario.source.stop if scenario.source.stop is not None else float("inf")
    window, series = (scenario.source.start, stop), None
    if scenario.source.is_moving or time_series:
        series = source_series(scenario, geometry, red)
        src, window = series.mean(dim=0), (0.0, float("inf"))  # the series carries the schedule
    outflow = vertical_outflow_rate(scenario, geometry, flow.velocity[2], red.mask)
    if layers is None:
        k0, k1 = band_faces(scenario, geometry)
        layers = 0 < k0 and k1 < geometry.grid.shape[2]
    layer_forcing, heights = room_layers(scenario, geometry, field_) if layers else (None, None)
    forcing = Forcing(velocity=(ux[None].to(dtype), uy[None].to(dtype)), source=src[None].to(dtype),
                      window=torch.tensor([window], dtype=dtype),
                      source_series=None if series is None else series[None].to(dtype),
                      outflow=outflow[None].to(dtype),
                      layers=None if layer_forcing is None else layer_forcing.map(lambda x: x.to(dtype)))
    dx, dy, _ = scenario.room.spacing
    return PlaneProblem(forcing=forcing, mask=red.mask, spacing=(dx, dy),
                        output_interval=scenario.time.output_interval,
                        n_steps=scenario.time.n_outputs,
                        eddy_diffusivity=band_mean_diffusivity(scenario, geometry, field_, red),
                        air_exchange_rate=air_exchange_rate(scenario, geometry), layer_heights=heights)


def batch_problems(scenarios: list[Scenario], dtype: torch.dtype = torch.float64, layers: bool | None = None
                   ) -> tuple[Forcing, PlaneProblem]:
    """Stack several scenarios of one geometry; errors name the scenario that does not fit."""
    if not scenarios:
        raise ValueError("no scenarios to batch")
    flows: dict[str, FlowField] = {}  # cases of one campaign usually share the geometry and inflow
    timed = any(s.source.is_moving for s in scenarios)  # then every case gets a source series
    problems = [plane_problem(s, dtype, flows, time_series=timed, layers=layers) for s in scenarios]
    first = problems[0]
    for s, p in zip(scenarios, problems):
        if p.geometry_key() != first.geometry_key() or not torch.equal(p.mask, first.mask):
            raise ValueError(f"scenario {s.name!r} ({s.case_id()}): plane grid, mask or output "
                             "interval differs from the first scenario; one surrogate serves one geometry")
        if p.n_steps != first.n_steps:
            raise ValueError(f"scenario {s.name!r}: horizon differs from the first scenario")
    return Forcing.stack([p.forcing for p in problems]), first


def spec_for(problem: PlaneProblem, learn_sink: bool = SurrogateSpec.learn_sink,
             vertical_exchange: bool = SurrogateSpec.vertical_outflow, room_layers: bool = SurrogateSpec.room_layers,
             **options: Any) -> SurrogateSpec:
    """The model spec for a plane problem: the one builder of :class:`SurrogateSpec`.

    The grid, output interval and initial D = K come from ``problem``; ``options`` are the spec's
    other fields (hidden_channels, use_closure, variant, closure, advection, ...), each defaulting
    to the spec's own. With ``learn_sink`` λ starts at the air-exchange rate, with
    ``vertical_exchange`` the band loses what the flow carries out through its top and bottom, with
    ``room_layers`` (problem built with ``layers=True``) that air comes back from the layers.
    """
    if room_layers and problem.layer_heights is None:
        raise ValueError("room_layers: the problem has no room layers: the plane band (plane.z_min, plane.z_max) "
                         "leaves no room below or above it, or it was built with layers=False")
    derived = {"learn_sink", "initial_sink", "vertical_outflow", "room_layers", "layer_heights", "shape",
               "spacing", "output_interval", "initial_diffusivity"}
    clash = sorted(derived & set(options))
    if clash:
        raise ValueError(f"spec_for: {clash} are derived from the problem and the flags, not options")
    # with the layers nothing leaves the room but through its exhausts: λ starts (near) zero
    initial_sink = problem.air_exchange_rate if learn_sink and not room_layers else 0.0
    return SurrogateSpec(learn_sink=learn_sink, initial_sink=initial_sink,
                         vertical_outflow=vertical_exchange and not room_layers, room_layers=room_layers,
                         layer_heights=problem.layer_heights or (0.0, 0.0, 0.0),
                         shape=tuple(problem.mask.shape), spacing=problem.spacing,  # type: ignore[arg-type]
                         output_interval=problem.output_interval,
                         initial_diffusivity=problem.eddy_diffusivity, **options)
