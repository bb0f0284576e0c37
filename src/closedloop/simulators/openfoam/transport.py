"""The scalar on the frozen flow: ∂c/∂t + ∇·(φ c) = ∇·(K ∇c) + S, implicit Euler at a fixed step.

Host and transport: ``scalarTransportFoam`` runs the time loop on the flow case's flux φ (its own
field T is identically zero and costs one trivial solve a step); the ``scalarTransport`` function
object solves c with diffusivity the cell field ``Kc`` (``nut Kc``, read by ``readFields``): K, or
K + ν_t/Sc_t for ``diffusivity.model = "eddy_viscosity"`` (scalarTransportFoam's own equation has one
constant DT and ignores ν_t). Interpolated to faces harmonically, as ours; convection by
``settings.advection`` (van Leer TVD by default, the reference's limiter).

Time step: Δt = output_interval / n, n the smallest whole number with max over cells of
Σ_a |u_a| Δt / h_a ≤ ``max_courant`` (u the flow's cell velocity), or the smallest n up to 4× that
also puts the source's start and stop on steps; where none does, they snap to the nearest step (the
reported emission is what was emitted). A moving source's segments are whole numbers of steps.

Source (``fvOptions`` of the function object, ``scalarSemiImplicitSource``, ``volumeMode absolute``):
the reference's cell weights (``geometry.source_weights``: box overlap or Gaussian cell integrals,
renormalised over fluid cells) at the source position, grouped into cellSets of equal weight, each
emitting q × (its share of Σ w V), so the emission is exactly q on its cells. Over ``MAX_GROUPS``
distinct weights (a Gaussian), cells are binned by log-weight into that many sets instead: the total
stays exactly q, each set's share is exact, and within a set it is spread evenly. A moving source is a
chain of static segments, each held for the time the source takes to move ``moving_source_step`` of
the smallest cell edge, at the position of its mid-time. OpenFOAM switches an option on when
timeStart ≤ t ≤ timeStart + duration at the step's end time t; a segment of steps (a, b] gets
timeStart = (a + ½)Δt, duration = (b − a − ¼)Δt (margins of a quarter step against the round-off of
OpenFOAM's summed time), so consecutive segments never both emit in one step
(no double emission at joins) and each emits exactly q Δt (b − a).

Outputs: c at output times, written by ``writeObjects`` after the function object's solve of that
step (the host writes nothing during the run: its own write of c would come one solve early, and
writeObjects leaves an object alone at the host's write times; it runs one step past the horizon so
that its end-of-run write falls after the last output); the exhaust flux Σ φ_f c_f per step
(``surfaceFieldValue`` weightedSum on each exhaust patch) and ∫c dV per step (``volFieldValue``
volIntegrate). ``reader`` reads them.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from closedloop.simulators.geometry import RoomGeometry, source_weights
from closedloop.simulators.openfoam.fields import write_scalar_fields
from closedloop.simulators.openfoam.flow import FlowCase
from closedloop.simulators.openfoam.foamfile import Raw, read_internal_field, write_cell_set, write_foam
from closedloop.simulators.openfoam.mesh import CellMap
from closedloop.simulators.openfoam.settings import OpenFOAMSettings
from closedloop.simulators.scenario import Scenario


@dataclass(frozen=True)
class Segment:
    """The source held at ``position`` over the steps n with ``first`` < n ≤ ``last`` (end times nΔt)."""

    first: int
    last: int
    position: tuple[float, float, float]


@dataclass(frozen=True)
class TransportPlan:
    dt: float
    steps: int
    steps_per_output: int
    segments: list[Segment]
    source_groups: int

    def emitting(self, n: int) -> bool:
        """Whether the step ending at nΔt emits (what OpenFOAM's windows give)."""
        return any(s.first < n <= s.last for s in self.segments)


def time_step(scenario: Scenario, settings: OpenFOAMSettings, velocity: np.ndarray) -> tuple[float, int]:
    """(Δt, steps per output): the Courant limit on the cell velocity (N, 3), landing on outputs and,
    where a step up to 4× shorter allows it, on the source's start and stop."""
    h = np.array(scenario.room.spacing)
    rate = float(np.max(np.abs(velocity) @ (1.0 / h))) if velocity.size else 0.0
    interval = scenario.time.output_interval
    n0 = 1 if rate == 0 else max(1, math.ceil(interval * rate / settings.max_courant - 1e-9))
    switches = [t for t in (scenario.source.start, scenario.source.stop) if t is not None and t > 0]
    for n in range(n0, 4 * n0 + 1):
        if all(abs(t * n / interval - round(t * n / interval)) < 1e-9 * max(1.0, t * n / interval) for t in switches):
            return interval / n, n
    return interval / n0, n0


def segments(scenario: Scenario, settings: OpenFOAMSettings, dt: float, steps: int) -> list[Segment]:
    """The source's emission as static segments of whole steps (see the module docstring)."""
    src = scenario.source
    first = int(round(src.start / dt))
    last = steps if src.stop is None else min(steps, int(round(src.stop / dt)))
    if last <= first:
        return []
    if not src.is_moving:
        return [Segment(first, last, src.position)]
    speed = max(math.dist((a.x, a.y, a.z), (b.x, b.y, b.z)) / (b.t - a.t)
                for a, b in zip(src.trajectory, src.trajectory[1:]))  # type: ignore[arg-type]
    hold = settings.moving_source_step * min(scenario.room.spacing) / max(speed, 1e-300)
    m = max(1, int(hold / dt))
    moving_until = int(math.ceil(src.trajectory[-1].t / dt - 1e-9))  # type: ignore[index]
    out, a = [], first
    while a < last:
        b = min(last, a + m) if a < moving_until else last
        out.append(Segment(a, b, src.position_at(0.5 * (a + b) * dt)))
        a = b
    return out


def weight_groups(weights: np.ndarray, max_groups: int) -> list[tuple[np.ndarray, float]]:
    """Cells of equal weight (rtol 1e-9) as (cell labels, share of the total); over ``max_groups``
    distinct weights, the cells are binned by log-weight into ``max_groups`` groups instead (each
    group's share is still the exact sum of its cells' weights, spread evenly over them)."""
    cells = np.nonzero(weights > 0)[0]
    w = weights[cells]
    total = w.sum()
    keys = np.round(np.log(w) / 1e-9).astype(np.int64)
    uniq, inverse = np.unique(keys, return_inverse=True)
    if uniq.size > max_groups:
        lw = np.log(w)
        edges = np.linspace(lw.min(), lw.max() + 1e-12, max_groups + 1)
        inverse = np.clip(np.searchsorted(edges, lw, side="right") - 1, 0, max_groups - 1)
    groups = []
    for g in np.unique(inverse):
        sel = inverse == g
        groups.append((cells[sel], float(w[sel].sum() / total)))
    return groups


def plan_transport(scenario: Scenario, settings: OpenFOAMSettings, flow: FlowCase) -> tuple[float, int]:
    velocity = read_internal_field(flow.path / "0" / "U", flow.cells.n_cells)
    return time_step(scenario, settings, velocity)


MAX_GROUPS = 32


def source_options(scenario: Scenario, geometry: RoomGeometry, cells: CellMap, plan_segments: list[Segment],
                   dt: float, case: Path) -> tuple[dict, int]:
    """The fvOptions dictionary of the function object, its cellSets written into ``case``; (dict, groups)."""
    options: dict = {}
    n_groups = 0
    for s, seg in enumerate(plan_segments):
        w = source_weights(scenario, geometry, seg.position, torch.float64)
        per_cell = (w * geometry.grid.cell_volume).reshape(-1).numpy()[cells.index]  # share of the emission
        for g, (labels, share) in enumerate(weight_groups(per_cell, MAX_GROUPS)):
            name = f"source_{s}_{g}"
            write_cell_set(case / "constant" / "polyMesh" / "sets" / name, labels)
            options[name] = {"type": "scalarSemiImplicitSource", "active": True,
                             "scalarSemiImplicitSourceCoeffs": {
                                 "timeStart": (seg.first + 0.5) * dt, "duration": (seg.last - seg.first - 0.25) * dt,
                                 "selectionMode": "cellSet", "cellSet": name, "volumeMode": "absolute",
                                 "injectionRateSuSp": {"c": Raw(f"({scenario.source.rate * share!r} 0)")}}}
            n_groups += 1
    return options, n_groups


def write_transport_case(scenario: Scenario, settings: OpenFOAMSettings, geometry: RoomGeometry, flow: FlowCase,
                         diffusivity: np.ndarray | float, case: Path) -> TransportPlan:
    """The transport case in ``case``: the flow's mesh and flux, the scalar fields, the dictionaries."""
    shutil.rmtree(case, ignore_errors=True)
    (case / "0").mkdir(parents=True)
    shutil.copytree(flow.path / "constant" / "polyMesh", case / "constant" / "polyMesh",
                    ignore=shutil.ignore_patterns("sets"))
    for name in ("U", "phi"):
        shutil.copy2(flow.path / "0" / name, case / "0" / name)
    write_scalar_fields(flow.cells, diffusivity, case)
    dt, per_output = plan_transport(scenario, settings, flow)
    steps = per_output * scenario.time.n_outputs
    segs = segments(scenario, settings, dt, steps)
    options, n_groups = source_options(scenario, geometry, flow.cells, segs, dt, case)
    exhausts = [p for p in flow.cells.patches if p.startswith("exhaust_")]
    functions: dict = {
        "readK": {"type": "readFields", "libs": Raw('("libfieldFunctionObjects.so")'), "fields": Raw("(Kc)")},
        "scalar": {"type": "scalarTransport", "libs": Raw('("libsolverFunctionObjects.so")'), "field": "c",
                   "nut": "Kc", "schemesField": "c", "bounded01": False, "resetOnStartUp": False,
                   "fvOptions": options},
        "writeC": {"type": "writeObjects", "libs": Raw('("libutilityFunctionObjects.so")'), "objects": Raw("(c)"),
                   "writeOption": "anyWrite", "writeControl": "timeStep", "writeInterval": per_output},
        "mass": {"type": "volFieldValue", "libs": Raw('("libfieldFunctionObjects.so")'), "operation": "volIntegrate",
                 "fields": Raw("(c)"), "writeFields": False, "log": False, "writeControl": "timeStep",
                 "writeInterval": 1},
    }
    for p in exhausts:
        functions[p] = {"type": "surfaceFieldValue", "libs": Raw('("libfieldFunctionObjects.so")'),
                        "regionType": "patch", "name": p, "operation": "weightedSum", "weightField": "phi",
                        "fields": Raw("(c)"), "writeFields": False, "log": False, "writeControl": "timeStep",
                        "writeInterval": 1}
    write_foam(case / "system" / "controlDict", "dictionary", {
        "application": "scalarTransportFoam", "startFrom": "startTime", "startTime": 0, "stopAt": "endTime",
        "endTime": (steps + 1) * dt, "deltaT": dt, "writeControl": "timeStep", "writeInterval": steps + 10,
        "purgeWrite": 0, "writeFormat": "ascii", "writePrecision": 17, "writeCompression": "off",
        "timeFormat": "general", "timePrecision": 12, "runTimeModifiable": False, "functions": functions}, "system")
    write_foam(case / "system" / "fvSchemes", "dictionary", {
        "ddtSchemes": {"default": "Euler"}, "gradSchemes": {"default": "Gauss linear"},
        "divSchemes": {"default": "none", "div(phi,T)": "Gauss upwind", "div(phi,c)": f"Gauss {settings.advection}"
                       + (" grad(c)" if settings.advection == "linearUpwind" else "")},
        "laplacianSchemes": {"default": "Gauss linear corrected", "laplacian(Dc,c)": "Gauss harmonic corrected"},
        "interpolationSchemes": {"default": "linear"}, "snGradSchemes": {"default": "corrected"}}, "system")
    solver = {"solver": "PBiCGStab", "preconditioner": "DILU", "tolerance": settings.solver_tolerance, "relTol": 0}
    write_foam(case / "system" / "fvSolution", "dictionary", {
        "solvers": {"T": solver, "c": solver}, "SIMPLE": {"nNonOrthogonalCorrectors": 0}}, "system")
    write_foam(case / "constant" / "transportProperties", "dictionary", {"DT": Raw("DT [0 2 -1 0 0 0 0] 0")},
               "constant")
    return TransportPlan(dt=dt, steps=steps, steps_per_output=per_output, segments=segs, source_groups=n_groups)
