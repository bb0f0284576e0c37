"""OpenFOAM's transport output → the series of a ``SimulationResult``, on the reference's grid.

c at each output time (ASCII, one value per OpenFOAM cell) goes through the mesh's ``CellMap`` onto
the (nx, ny, nz) grid (zero in solids), then through the reference's own reductions: the band average
on the plane grid (``plane.plane_reduction``) and the probe cells (``plane.probe_indices``).

Mass budget at output time t_k = k·n·Δt: M(t_k) = Σ c V (in the domain, from the field),
E(t_k) = q Δt × (emitting steps up to t_k) (the emission OpenFOAM's source windows give,
``TransportPlan.emitting``), X(t_k) = Σ_steps Δt Σ_exhausts Σ_f φ_f c_f (the exhaust flux each step,
from the ``surfaceFieldValue`` function objects). Implicit Euler makes M(t) − M(0) = E − X exactly, up
to the linear solver's tolerance; no diffusion passes the inlets (Kc = 0 there), walls or exhausts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from closedloop.simulators.geometry import RoomGeometry
from closedloop.simulators.openfoam.foamfile import FoamFormatError, read_internal_field, read_table
from closedloop.simulators.openfoam.mesh import CellMap
from closedloop.simulators.openfoam.transport import TransportPlan
from closedloop.simulators.plane import plane_reduction, probe_indices
from closedloop.simulators.scenario import Scenario


@dataclass(frozen=True)
class Series:
    times: torch.Tensor  # (T,)
    plane: torch.Tensor  # (T, nx, ny)
    plane_mask: torch.Tensor  # (nx, ny)
    probes: dict[str, torch.Tensor]  # name -> (T,)
    mass_in_domain: torch.Tensor  # (T,)
    mass_emitted: torch.Tensor  # (T,)
    mass_exhausted: torch.Tensor  # (T,)
    snapshots: dict[float, torch.Tensor]  # t -> (nx, ny, nz)
    mass_integral: np.ndarray  # (steps,) ∫c dV after each step (volFieldValue), a check of M


def time_directory(case: Path, t: float, tol: float) -> Path:
    """The directory of output time ``t`` (OpenFOAM names it by its rounded time value)."""
    best = None
    for d in case.iterdir():
        try:
            value = float(d.name)
        except ValueError:
            continue
        if d.is_dir() and abs(value - t) <= tol and (best is None or abs(value - t) < best[0]):
            best = (abs(value - t), d)
    if best is None:
        raise FoamFormatError(f"{case}: no output directory for t = {t:g} s (did the run stop early?)")
    return best[1]


def function_table(case: Path, name: str, file: str) -> np.ndarray:
    """A function object's table postProcessing/NAME/0/FILE.dat (the only start time here)."""
    return read_table(case / "postProcessing" / name / "0" / f"{file}.dat")


def read_series(scenario: Scenario, geometry: RoomGeometry, cells: CellMap, plan: TransportPlan,
                case: Path) -> Series:
    """The plane, probes, snapshots and mass budget at the scenario's output times."""
    outputs = scenario.time.output_times()
    reduction = plane_reduction(scenario, geometry)
    probes = probe_indices(scenario, geometry)
    fields = [torch.zeros(geometry.grid.shape, dtype=torch.float64)]
    for t in outputs[1:]:
        c = read_internal_field(time_directory(case, t, 0.25 * plan.dt) / "c", cells.n_cells)
        fields.append(cells.to_grid(c))
    stack = torch.stack(fields)
    mass = (stack * geometry.grid.cell_volume).sum(dim=(1, 2, 3))
    flux = np.zeros(plan.steps)
    for p in (p for p in cells.patches if p.startswith("exhaust_")):
        table = function_table(case, p, "surfaceFieldValue")
        if table.shape[0] < plan.steps:
            raise FoamFormatError(f"{case}: {p}'s flux table has {table.shape[0]} rows for {plan.steps} steps")
        flux += table[:plan.steps, 1]
    integral = function_table(case, "mass", "volFieldValue")[:plan.steps, 1]
    rate = scenario.source.rate
    emitted_step = np.array([rate * plan.dt if plan.emitting(n) else 0.0 for n in range(1, plan.steps + 1)])
    at = [k * plan.steps_per_output for k in range(len(outputs))]
    cum_e = np.concatenate([[0.0], np.cumsum(emitted_step)])[at]
    cum_x = np.concatenate([[0.0], np.cumsum(flux * plan.dt)])[at]
    snapshots = {t: stack[i].clone() for i, t in enumerate(outputs)
                 if any(abs(t - s) < 1e-9 for s in scenario.time.snapshots)}
    return Series(
        times=torch.tensor(outputs, dtype=torch.float64), plane=reduction.average(stack),
        plane_mask=reduction.mask.clone(), probes={n: stack[(slice(None), *idx)].clone() for n, idx in probes.items()},
        mass_in_domain=mass, mass_emitted=torch.from_numpy(cum_e), mass_exhausted=torch.from_numpy(cum_x),
        snapshots=snapshots, mass_integral=integral)
