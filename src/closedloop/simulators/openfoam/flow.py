"""The steady flow in OpenFOAM, solved once per geometry and cached like ours.

``potential``: ``potentialFoam -writephi`` solves the Laplace problem for the velocity potential Φ
with u·n prescribed on every patch (zero on walls; ``fields.vent_velocities`` at the vents), so Φ is
pure Neumann, a consistent singular system that PCG solves (``fields`` says how potentialFoam is kept
from its adjustPhi check): on our grid the same discrete problem as ``simulators.flow.potential_flow``
(two-point Laplacian, same face fluxes), solved to ``solver_tolerance``.
``navier_stokes``: ``simpleFoam``, steady incompressible RANS with ``settings.turbulence`` (standard
k–ε by default) and wall functions (nutkWallFunction, epsilonWallFunction, kqRWallFunction), the same
prescribed vent velocities, SIMPLEC or SIMPLE (``pressure_velocity``) until every initial residual
is below ``flow_residual`` or ``flow_iterations``; its last flux φ, U and ν_t are the flow the
transport runs on (unconverged at the cap: ``info["converged"]`` is False, and said in the result).

Cache: ``$CLOSEDLOOP_FLOW_CACHE/openfoam/KEY/`` (``flow_cache.cache_dir``; ``off``: none), KEY the hash
of ``flow_cache.flow_key(scenario)`` (room, obstacles, vents, flow model), the OpenFOAM version and the
flow settings. Held under ``flow_cache.geometry_lock`` (fcntl), so concurrent simulations of one
geometry solve it once; an entry is written to a temporary directory and renamed into place.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from closedloop.simulators.flow_cache import cache_dir, flow_key, geometry_lock
from closedloop.simulators.openfoam.fields import write_flow_fields
from closedloop.simulators.openfoam.foamfile import FoamFormatError, write_foam
from closedloop.simulators.openfoam.mesh import CellMap, build_mesh
from closedloop.simulators.openfoam.runner import OpenFOAMError, Tools
from closedloop.simulators.openfoam.settings import OpenFOAMSettings
from closedloop.simulators.scenario import Scenario



class UnconvergedFlow(UserWarning):
    """simpleFoam reached its iteration cap before its residual target (the flow is used as it is)."""


@dataclass(frozen=True)
class FlowCase:
    """A solved flow: ``path`` holds constant/polyMesh and 0/ (U, phi, and nut for RANS)."""

    path: Path
    cells: CellMap
    info: dict  # iterations, residuals, seconds, cpu_seconds, model
    cached: bool
    key: str


def openfoam_flow_key(scenario: Scenario, settings: OpenFOAMSettings, version: str) -> str:
    fields = ["kinematic_viscosity", "solver_tolerance"]
    if scenario.flow.model == "navier_stokes":
        fields += ["turbulence", "inlet_intensity", "inlet_mixing_length", "flow_iterations", "flow_residual",
                   "pressure_velocity"]
    data = {"geometry": flow_key(scenario), "version": version,
            "settings": settings.model_dump(include=set(fields))}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:20]


def steady_flow(scenario: Scenario, settings: OpenFOAMSettings, version: str, tools: Tools,
                workdir: Path) -> FlowCase:
    """The scenario's flow: from the cache, or solved (in the cache entry, or ``workdir/flow`` without one)."""
    key = openfoam_flow_key(scenario, settings, version)
    root = cache_dir()
    root = root / "openfoam" if root is not None else None
    with geometry_lock(root, key):
        if root is not None and (root / key / "info.json").exists():
            try:
                return _load(root / key, key)
            except (OSError, ValueError, KeyError, FoamFormatError):
                shutil.rmtree(root / key, ignore_errors=True)  # a damaged entry is solved again
        if root is None:
            case = workdir / "flow"
            shutil.rmtree(case, ignore_errors=True)
            return _solve(scenario, settings, tools, case, key)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f"{key}.tmp"))
        try:
            _solve(scenario, settings, tools, tmp, key)
            os.replace(tmp, root / key)
        except BaseException:
            _keep_logs(tmp, workdir / "flow-failed")
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return _load(root / key, key, cached=False)


def _keep_logs(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for log in src.glob("log.*"):
        shutil.copy2(log, dst / log.name)


def _solve(scenario: Scenario, settings: OpenFOAMSettings, tools: Tools, case: Path, key: str) -> FlowCase:
    cells = build_mesh(scenario, case, tools)
    turbulent = scenario.flow.model == "navier_stokes"
    write_flow_fields(scenario, cells, settings, case, turbulent)
    if turbulent:
        info = simple_foam(case, settings, tools)
    else:
        info = potential_foam(case, settings, tools)
    info["model"] = scenario.flow.model
    info["mesh_cells"] = cells.n_cells
    info["patches"] = cells.patches
    np.savez(case / "cells.npz", index=cells.index, volume=cells.volume, shape=np.array(cells.shape))
    (case / "info.json").write_text(json.dumps(info, indent=1))
    return FlowCase(case, cells, info, cached=False, key=key)


def _load(path: Path, key: str, cached: bool = True) -> FlowCase:
    info = json.loads((path / "info.json").read_text())
    data = np.load(path / "cells.npz")
    cells = CellMap(shape=tuple(int(n) for n in data["shape"]), index=data["index"], volume=data["volume"],
                    patches={k: int(v) for k, v in info["patches"].items()})
    for name in ("U", "phi"):
        if not (path / "0" / name).exists():
            raise FoamFormatError(f"{path}: cached flow lacks 0/{name}")
    return FlowCase(path, cells, info, cached=cached, key=key)


def _control(application: str, end: int, interval: int) -> dict:
    return {"application": application, "startFrom": "startTime", "startTime": 0, "stopAt": "endTime",
            "endTime": end, "deltaT": 1, "writeControl": "timeStep", "writeInterval": interval,
            "purgeWrite": 1, "writeFormat": "ascii", "writePrecision": 17, "writeCompression": "off",
            "timeFormat": "general", "timePrecision": 12, "runTimeModifiable": False}


def potential_foam(case: Path, settings: OpenFOAMSettings, tools: Tools) -> dict:
    """Run potentialFoam on a meshed ``case`` with its 0/U and 0/p; iterations, residual and seconds."""
    write_foam(case / "system" / "controlDict", "dictionary", _control("potentialFoam", 1, 1), "system")
    write_foam(case / "system" / "fvSchemes", "dictionary", {
        "ddtSchemes": {"default": "steadyState"}, "gradSchemes": {"default": "Gauss linear"},
        "divSchemes": {"default": "none", "div(phi,U)": "Gauss linear"},
        "laplacianSchemes": {"default": "Gauss linear corrected"},
        "interpolationSchemes": {"default": "linear"}, "snGradSchemes": {"default": "corrected"}}, "system")
    write_foam(case / "system" / "fvSolution", "dictionary", {
        "solvers": {"Phi": {"solver": "PCG", "preconditioner": "DIC", "tolerance": settings.solver_tolerance,
                            "relTol": 0, "maxIter": 100000}},
        "potentialFlow": {"nNonOrthogonalCorrectors": 0, "PhiRefCell": 0, "PhiRefValue": 0}}, "system")
    run = tools.run(case, "potentialFoam", "-writephi")
    text = run_log(case, "potentialFoam")
    its = [int(m) for m in re.findall(r"Solving for Phi.*No Iterations (\d+)", text)]
    res = [float(m) for m in re.findall(r"Solving for Phi.*Final residual = ([-+0-9.eE]+)", text)]
    if not res or res[-1] > max(1e3 * settings.solver_tolerance, 1e-9):
        raise OpenFOAMError(f"OpenFOAM potentialFoam: Phi did not converge (final residual "
                            f"{res[-1] if res else 'unknown'}); log {case / 'log.potentialFoam'}")
    return {"iterations": sum(its), "residual": res[-1], "seconds": run.wall_seconds, "cpu_seconds": run.cpu_seconds}


def run_log(case: Path, name: str) -> str:
    return (case / f"log.{name}").read_text(errors="replace")


def simple_foam(case: Path, settings: OpenFOAMSettings, tools: Tools) -> dict:
    """Run simpleFoam on a meshed ``case`` and copy its last solution into 0/; iterations, convergence."""
    n = settings.flow_iterations
    write_foam(case / "system" / "controlDict", "dictionary", _control("simpleFoam", n, n), "system")
    write_foam(case / "system" / "fvSchemes", "dictionary", {
        "ddtSchemes": {"default": "steadyState"},
        "gradSchemes": {"default": "Gauss linear", "grad(U)": "cellLimited Gauss linear 1"},
        "divSchemes": {"default": "none", "div(phi,U)": "bounded Gauss linearUpwind grad(U)",
                       "div(phi,k)": "bounded Gauss upwind", "div(phi,epsilon)": "bounded Gauss upwind",
                       "div((nuEff*dev2(T(grad(U)))))": "Gauss linear"},
        "laplacianSchemes": {"default": "Gauss linear corrected"},
        "interpolationSchemes": {"default": "linear"}, "snGradSchemes": {"default": "corrected"},
        "wallDist": {"method": "meshWave"}}, "system")
    tol = settings.flow_residual
    # SIMPLEC (consistent): U relaxed 0.9, p not at all; SIMPLE: the classic 0.7 / 0.3, slower but steadier
    consistent = settings.pressure_velocity == "SIMPLEC"
    u_relax, p_relax = (0.9, 1.0) if consistent else (0.7, 0.3)
    write_foam(case / "system" / "fvSolution", "dictionary", {
        "solvers": {"p": {"solver": "GAMG", "smoother": "GaussSeidel", "tolerance": 1e-9, "relTol": 0.05},
                    '"(U|k|epsilon)"': {"solver": "smoothSolver", "smoother": "symGaussSeidel",
                                      "tolerance": 1e-10, "relTol": 0.1}},
        "SIMPLE": {"nNonOrthogonalCorrectors": 0, "consistent": consistent, "pRefCell": 0, "pRefValue": 0,
                   "residualControl": {"p": tol, "U": tol, '"(k|epsilon)"': tol}},
        "relaxationFactors": {"equations": {"U": u_relax, '"(k|epsilon)"': 0.7}, "fields": {"p": p_relax}}},
        "system")
    write_foam(case / "constant" / "transportProperties", "dictionary",
               {"transportModel": "Newtonian", "nu": settings.kinematic_viscosity}, "constant")
    write_foam(case / "constant" / "turbulenceProperties", "dictionary",
               {"simulationType": "RAS", "RAS": {"RASModel": settings.turbulence, "turbulence": "on",
                                                 "printCoeffs": "off"}}, "constant")
    run = tools.run(case, "simpleFoam")
    text = run_log(case, "simpleFoam")
    times = [float(t) for t in re.findall(r"^Time = ([0-9.eE+-]+)", text, re.M)]
    p_res = [float(m) for m in re.findall(r"Solving for p, Initial residual = ([-+0-9.eE]+)", text)]
    converged = "SIMPLE solution converged" in text
    last = _latest_time(case)
    if last is None:
        raise OpenFOAMError(f"OpenFOAM simpleFoam: wrote no solution; log {case / 'log.simpleFoam'}")
    for name in ("U", "phi", "nut", "k", "epsilon", "p"):
        if (last / name).exists():
            shutil.copy2(last / name, case / "0" / name)
    if not converged:
        warnings.warn(f"simpleFoam stopped at its cap of {settings.flow_iterations} iterations with the pressure's "
                      f"initial residual at {p_res[-1] if p_res else float('nan'):.2g} (target "
                      f"{settings.flow_residual:g}); the transport runs on that flow", UnconvergedFlow, stacklevel=2)
    return {"iterations": int(times[-1]) if times else 0, "residual": p_res[-1] if p_res else float("nan"),
            "converged": converged, "seconds": run.wall_seconds, "cpu_seconds": run.cpu_seconds}


def _latest_time(case: Path) -> Path | None:
    best = None
    for d in case.iterdir():
        try:
            t = float(d.name)
        except ValueError:
            continue
        if d.is_dir() and t > 0 and (best is None or t > best[0]):
            best = (t, d)
    return best[1] if best else None
