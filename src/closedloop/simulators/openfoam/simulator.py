"""OpenFOAM behind the ``Simulator`` interface: scenario → case → run → ``SimulationResult``.

    OpenFOAMSimulator(settings).simulate(scenario, workdir=DIR) -> SimulationResult

Steps: the scenario is checked as for the reference (sizes, connectivity, probes: bad input fails
before any tool runs); the steady flow comes from the cache or is solved (``flow``, with the mesh:
``mesh``); the transport case is written (``transport``) and run by scalarTransportFoam; its output
is read onto the reference's grid (``reader``). The case directories (``DIR/flow`` without a flow
cache, ``DIR/transport``) keep every tool's log. Without ``workdir`` they go to a temporary directory,
removed after a successful run (kept, and named in the error, after a failed one, or always with
``settings.keep_case``).

Results are computed in float64 (OpenFOAM's scalar) on the CPU whatever ``device``; ``dtype`` casts the
returned series. ``wall_seconds``: the transport run; ``flow_seconds``: the flow solve and mesh (0 when
cached); ``cpu_seconds``: every OpenFOAM child process's user + system time.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from closedloop.simulators.budget import check_size
from closedloop.simulators.external import SimulatorFailed
from closedloop.simulators.geometry import check_connected, room_geometry
from closedloop.simulators.openfoam.flow import FlowCase, steady_flow
from closedloop.simulators.openfoam.foamfile import read_internal_field
from closedloop.simulators.openfoam.reader import read_series
from closedloop.simulators.openfoam.runner import OpenFOAMError, Tools, openfoam_version, require_openfoam
from closedloop.simulators.openfoam.settings import OpenFOAMSettings
from closedloop.simulators.openfoam.transport import write_transport_case
from closedloop.simulators.plane import probe_indices
from closedloop.simulators.reference import ProgressFn, SimulationResult
from closedloop.simulators.scenario import Scenario

FLOW_TOOLS = ("blockMesh", "subsetMesh", "topoSet", "createPatch", "writeCellCentres", "writeCellVolumes",
              "potentialFoam", "simpleFoam")


class OpenFOAMSimulator:
    """The ``openfoam`` simulator (ESI OpenFOAM, e.g. v1912 from Debian)."""

    name = "openfoam"

    def __init__(self, settings: OpenFOAMSettings | None = None) -> None:
        self.settings = settings if settings is not None else OpenFOAMSettings()
        self._version: str | None = None

    def version(self) -> str:
        if self._version is None:
            self._version = openfoam_version()
        return self._version

    def identity(self) -> dict[str, Any]:
        return {"simulator": self.name, "version": self.version(), "settings": self.settings.numerics()}

    def simulate(self, scenario: Scenario, *, device: str | torch.device = "auto",
                 dtype: torch.dtype = torch.float64, progress: ProgressFn | None = None,
                 max_memory_gb: float | None = None, max_cells: int | None = None,
                 workdir: Path | None = None) -> SimulationResult:
        check_size(scenario, max_memory_gb, max_cells, torch.float64)
        geometry = room_geometry(scenario)
        check_connected(scenario, geometry)
        probe_indices(scenario, geometry)
        require_openfoam("scalarTransportFoam")
        temporary = workdir is None
        root = Path(tempfile.mkdtemp(prefix="closedloop-openfoam-")) if temporary else Path(workdir)
        root.mkdir(parents=True, exist_ok=True)
        try:
            result = self._run(scenario, geometry, root, dtype, progress)
        except SimulatorFailed as err:  # a tool failed, or its output cannot be read: keep the case, say where
            raise type(err)(f"{err}\n(case kept in {root})") from None
        if temporary and not self.settings.keep_case:
            shutil.rmtree(root, ignore_errors=True)
        return result

    def _run(self, scenario: Scenario, geometry, root: Path, dtype: torch.dtype,
             progress: ProgressFn | None) -> SimulationResult:
        s = self.settings
        tools = Tools(s.timeout_s)
        version = self.version()
        t0 = time.perf_counter()
        flow = steady_flow(scenario, s, version, tools, root)
        flow_seconds = time.perf_counter() - t0 if not flow.cached else 0.0
        case = root / "transport"
        plan = write_transport_case(scenario, s, geometry, flow, diffusivity(scenario, flow), case)
        if progress is not None:
            progress(0.0, scenario.time.horizon)
        run = tools.run(case, "scalarTransportFoam")
        series = read_series(scenario, geometry, flow.cells, plan, case)
        if progress is not None:
            progress(scenario.time.horizon, scenario.time.horizon)
        cast = lambda x: x.to(dtype)  # noqa: E731
        return SimulationResult(
            times=series.times, plane=cast(series.plane), plane_mask=series.plane_mask,
            probes={k: cast(v) for k, v in series.probes.items()}, mass_in_domain=cast(series.mass_in_domain),
            mass_emitted=cast(series.mass_emitted), mass_exhausted=cast(series.mass_exhausted), steps=plan.steps,
            dt=plan.dt, wall_seconds=run.wall_seconds, flow_seconds=flow_seconds, device="cpu",
            dtype=str(dtype).removeprefix("torch."), snapshots={t: cast(v) for t, v in series.snapshots.items()},
            extra=self._provenance(scenario, flow, plan, case, tools, series), cpu_seconds=tools.cpu_seconds,
            simulator=self.name, simulator_version=version)

    def _provenance(self, scenario: Scenario, flow: FlowCase, plan, case: Path, tools: Tools, series) -> dict:
        info = flow.info
        return {"grid_shape": list(scenario.room.shape), "mesh_cells": flow.cells.n_cells,
                "patches": flow.cells.patches, "flow_model": scenario.flow.model,
                "flow_iterations": info.get("iterations"), "flow_residual": info.get("residual"),
                "flow_converged": info.get("converged", True), "flow_cached": flow.cached, "flow_key": flow.key,
                "flow_case": str(flow.path), "transport_case": str(case), "compute_dtype": "float64",
                "advection": self.settings.advection, "time_stepping": "implicit Euler",
                "max_courant": self.settings.max_courant, "source_segments": len(plan.segments),
                "source_groups": plan.source_groups,
                "tool_seconds": {name: run.wall_seconds for name, run in tools.runs},
                "mass_check": float(np.max(np.abs(series.mass_integral[[k * plan.steps_per_output - 1 for k in
                                    range(1, scenario.time.n_outputs + 1)]] - series.mass_in_domain[1:].numpy())))}


def diffusivity(scenario: Scenario, flow: FlowCase) -> float | np.ndarray:
    """K (constant), or the cell field K + ν_t/Sc_t from the flow's eddy viscosity (N,) m²/s."""
    if scenario.diffusivity.model == "constant":
        return scenario.eddy_diffusivity
    nut_file = flow.path / "0" / "nut"
    if not nut_file.exists():
        raise OpenFOAMError(f"diffusivity.model: 'eddy_viscosity' needs the flow's nut, missing in {flow.path}")
    nut = read_internal_field(nut_file, flow.cells.n_cells)
    return scenario.eddy_diffusivity + np.maximum(nut, 0.0) / scenario.diffusivity.turbulent_schmidt
