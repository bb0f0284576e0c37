"""The initial and boundary fields (0/): velocity, pressure and turbulence for the flow, the scalar.

Patches (``mesh``): ``walls`` and ``obstacles`` (walls), ``inlet_k``, ``exhaust_k``. As in the
reference (``flow.boundary_velocity``), inlet k blows its velocity vector in and every exhaust takes
the supply out at one uniform normal speed, supply / (total open exhaust area); pressure is
zero-gradient everywhere (a reference cell fixes its level).

The scalar c (mg/m³): zero-gradient on walls and obstacles (no flux), zero at inlets (clean supply
air), ``inletOutlet`` at exhausts (outflow carries the cell value out). Its diffusivity is the cell
field ``Kc`` (m²/s) the transport reads: K (constant), or K + ν_t/Sc_t from the flow's eddy viscosity;
on the inlet patches Kc = 1e-30 (zero, but finite
for the harmonic interpolation's 1/K), so no scalar diffuses through the supply — the reference's rule (no
diffusive flux through the box boundary). Walls and exhausts carry no diffusive flux anyway.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from closedloop.simulators.openfoam.foamfile import Raw, write_foam
from closedloop.simulators.openfoam.mesh import CellMap
from closedloop.simulators.openfoam.settings import OpenFOAMSettings
from closedloop.simulators.scenario import Scenario

DIM_VELOCITY = Raw("[0 1 -1 0 0 0 0]")
DIM_KINEMATIC = Raw("[0 2 -1 0 0 0 0]")
DIM_EPSILON = Raw("[0 2 -3 0 0 0 0]")
DIM_K = Raw("[0 2 -2 0 0 0 0]")
DIM_NONE = Raw("[0 0 0 0 0 0 0]")
C_MU = 0.09
INLET_DIFFUSIVITY = 1e-30  # Kc on inlet patches: no diffusion through the supply (1/Kc must stay finite)


def vec(v) -> Raw:
    return Raw("uniform (" + " ".join(repr(float(x)) for x in v) + ")")


def scalar(v: float) -> Raw:
    return Raw(f"uniform {float(v)!r}")


def nonuniform(values: np.ndarray) -> Raw:
    return Raw(f"nonuniform List<scalar> {values.size}\n(\n" + "\n".join(repr(float(x)) for x in values) + "\n)")


def vent_velocities(scenario: Scenario, cells: CellMap) -> dict[str, tuple[float, float, float]]:
    """Velocity (m/s) on each vent patch: inlet k its vector, exhausts the balancing uniform outflow."""
    h = scenario.room.spacing
    area = lambda axis: math.prod(h) / h[axis]  # noqa: E731
    supply, exhaust_area, out = 0.0, 0.0, {}
    for i, inlet in enumerate(scenario.inlets):
        v = inlet.velocity_vector()
        out[f"inlet_{i}"] = v
        supply += abs(v[inlet.normal_axis]) * cells.patches[f"inlet_{i}"] * area(inlet.normal_axis)
    for i, ex in enumerate(scenario.exhausts):
        exhaust_area += cells.patches[f"exhaust_{i}"] * area(ex.normal_axis)
    for i, ex in enumerate(scenario.exhausts):
        v = [0.0, 0.0, 0.0]
        v[ex.normal_axis] = (supply / exhaust_area) * (-1.0 if ex.face[1] == "-" else 1.0)
        out[f"exhaust_{i}"] = tuple(v)  # type: ignore[assignment]
    return out


def supply(scenario: Scenario, cells: CellMap) -> float:
    """Volume flow in through the inlet patches (m³/s)."""
    h = scenario.room.spacing
    return sum(abs(inlet.velocity_vector()[inlet.normal_axis]) * cells.patches[f"inlet_{i}"]
               * math.prod(h) / h[inlet.normal_axis] for i, inlet in enumerate(scenario.inlets))


def _walls(cells: CellMap) -> list[str]:
    """Patches where no fluid passes: the walls and the obstacles (``reference`` has no faces)."""
    return [p for p in cells.patches if p in ("walls", "obstacles")]


def _vents(cells: CellMap) -> list[str]:
    return [p for p in cells.patches if p.startswith(("inlet_", "exhaust_"))]


def write_flow_fields(scenario: Scenario, cells: CellMap, settings: OpenFOAMSettings, case: Path,
                      turbulent: bool) -> None:
    """0/U and 0/p (and k, epsilon, nut for a turbulent flow)."""
    vel = vent_velocities(scenario, cells)
    wall_u = {"type": "noSlip"} if turbulent else {"type": "fixedValue", "value": vec((0, 0, 0))}
    u_bf = {p: wall_u for p in _walls(cells)}
    u_bf["reference"] = {"type": "fixedValue", "value": vec((0, 0, 0))}
    u_bf.update({p: {"type": "fixedValue", "value": vec(vel[p])} for p in _vents(cells)})
    write_foam(case / "0" / "U", "volVectorField",
               {"dimensions": DIM_VELOCITY, "internalField": vec((0, 0, 0)), "boundaryField": u_bf}, "0")
    # pressure: zero-gradient on every patch with faces. For potentialFoam it is fixed on the face-less
    # patch ``reference``: that tells potentialFoam a reference exists, so it skips adjustPhi (which
    # refuses an inflow and a prescribed outflow that differ by round-off) and leaves Φ pure Neumann
    # (a consistent singular system, which PCG solves); simpleFoam uses pRefCell instead
    p_bf = {p: {"type": "zeroGradient"} for p in cells.patches}
    if not turbulent:
        p_bf["reference"] = {"type": "fixedValue", "value": scalar(0)}
    write_foam(case / "0" / "p", "volScalarField",
               {"dimensions": DIM_K, "internalField": scalar(0), "boundaryField": p_bf}, "0")
    if not turbulent:
        return
    speed = max(math.sqrt(sum(x * x for x in inlet.velocity_vector())) for inlet in scenario.inlets)
    k0 = 1.5 * (settings.inlet_intensity * speed) ** 2
    eps0 = C_MU ** 0.75 * k0 ** 1.5 / settings.inlet_mixing_length
    inlets = [p for p in _vents(cells) if p.startswith("inlet")]
    exhausts = [p for p in _vents(cells) if p.startswith("exhaust")]
    k_bf = {p: {"type": "kqRWallFunction", "value": scalar(k0)} for p in _walls(cells)}
    k_bf.update({p: {"type": "turbulentIntensityKineticEnergyInlet", "intensity": settings.inlet_intensity,
                     "value": scalar(k0)} for p in inlets})
    k_bf.update({p: {"type": "zeroGradient"} for p in [*exhausts, "reference"]})
    e_bf = {p: {"type": "epsilonWallFunction", "value": scalar(eps0)} for p in _walls(cells)}
    e_bf.update({p: {"type": "turbulentMixingLengthDissipationRateInlet",
                     "mixingLength": settings.inlet_mixing_length, "value": scalar(eps0)} for p in inlets})
    e_bf.update({p: {"type": "zeroGradient"} for p in [*exhausts, "reference"]})
    n_bf = {p: {"type": "nutkWallFunction", "value": scalar(0)} for p in _walls(cells)}
    n_bf.update({p: {"type": "calculated", "value": scalar(0)} for p in [*_vents(cells), "reference"]})
    for name, dims, value, bf in (("k", DIM_K, k0, k_bf),
                                  ("epsilon", DIM_EPSILON, eps0, e_bf), ("nut", DIM_KINEMATIC, 0.0, n_bf)):
        write_foam(case / "0" / name, "volScalarField",
                   {"dimensions": dims, "internalField": scalar(value), "boundaryField": bf}, "0")


def write_scalar_fields(cells: CellMap, diffusivity: np.ndarray | float, case: Path) -> None:
    """0/c (the transported scalar, zero initially), 0/Kc (its diffusivity, zero on inlets), 0/T (the
    host solver's own scalar, identically zero: it costs one trivial solve per step)."""
    def scalar_bc() -> dict:
        bf = {p: {"type": "zeroGradient"} for p in [*_walls(cells), "reference"]}
        for p in _vents(cells):
            bf[p] = ({"type": "fixedValue", "value": scalar(0)} if p.startswith("inlet")
                     else {"type": "inletOutlet", "inletValue": scalar(0), "value": scalar(0)})
        return bf

    for name in ("c", "T"):
        write_foam(case / "0" / name, "volScalarField",
                   {"dimensions": DIM_NONE, "internalField": scalar(0), "boundaryField": scalar_bc()}, "0")
    internal = scalar(diffusivity) if np.isscalar(diffusivity) else nonuniform(np.asarray(diffusivity))
    d_bf = {}
    for p in cells.patches:
        # "zero" at inlets: 1e-30 m²/s, as the harmonic face interpolation takes 1/K
        d_bf[p] = ({"type": "calculated", "value": scalar(INLET_DIFFUSIVITY)} if p.startswith("inlet")
                   else {"type": "zeroGradient"})
    write_foam(case / "0" / "Kc", "volScalarField",
               {"dimensions": DIM_KINEMATIC, "internalField": internal, "boundaryField": d_bf}, "0")
