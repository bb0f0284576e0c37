"""OpenFOAM's steady flow: potentialFoam solves our discrete potential problem (same velocities to
solver tolerance), simpleFoam converges with inflow = outflow, and one geometry is solved once."""
from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from closedloop.simulators import Scenario
from closedloop.simulators.flow import potential_flow
from closedloop.simulators.geometry import room_geometry
from closedloop.simulators.openfoam.flow import openfoam_flow_key, steady_flow
from closedloop.simulators.openfoam.foamfile import read_internal_field, read_patch_value
from closedloop.simulators.openfoam.runner import Tools
from closedloop.simulators.openfoam.settings import OpenFOAMSettings
from closedloop.simulators.scenario import PartlyCovered
from openfoam_cases import requires_openfoam, small_room, tiny_box
from sim_test_scenarios import cluttered_data

pytestmark = requires_openfoam


def cell_velocity(scenario: Scenario) -> torch.Tensor:
    """Our potential flow's cell-centre velocity (mean of the two faces on each axis), (nx, ny, nz, 3)."""
    geometry = room_geometry(scenario)
    flow = potential_flow(scenario, geometry)
    n = geometry.grid.shape
    return torch.stack([0.5 * (u.narrow(a, 0, n[a]) + u.narrow(a, 1, n[a])) for a, u in enumerate(flow.velocity)], -1)


def patch_flux(flow, patch: str) -> float:
    """Σ φ over a patch's faces (m³/s, outward positive)."""
    return float(read_patch_value(flow.path / "0" / "phi", patch, flow.cells.patches[patch]).sum())


def testpotential_foam_solves_our_potential_flow(tmp_path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartlyCovered)
        scenario = Scenario.model_validate(cluttered_data())  # a partition, two inlets, a ceiling exhaust
    flow = steady_flow(scenario, OpenFOAMSettings(), "test", Tools(60), tmp_path)
    u_of = read_internal_field(flow.path / "0" / "U", flow.cells.n_cells)
    ours = cell_velocity(scenario).reshape(-1, 3).numpy()[flow.cells.index]
    assert np.abs(u_of - ours).max() < 1e-9 * np.abs(ours).max()  # the same discrete problem, both converged
    inflow = -sum(patch_flux(flow, p) for p in flow.cells.patches if p.startswith("inlet"))
    outflow = sum(patch_flux(flow, p) for p in flow.cells.patches if p.startswith("exhaust"))
    assert inflow > 0 and math.isclose(inflow, outflow, rel_tol=1e-12)
    assert flow.info["residual"] < 1e-10 and not flow.cached


def testsimple_foam_converges_and_conserves_volume(tmp_path: Path):
    scenario = small_room(flow={"model": "navier_stokes"})  # ~300 SIMPLE iterations, a few seconds
    flow = steady_flow(scenario, OpenFOAMSettings(flow_iterations=800), "test", Tools(120), tmp_path)
    assert flow.info["converged"], flow.info
    inflow = -sum(patch_flux(flow, p) for p in flow.cells.patches if p.startswith("inlet"))
    outflow = sum(patch_flux(flow, p) for p in flow.cells.patches if p.startswith("exhaust"))
    assert math.isclose(inflow, 0.5 * 2 * 0.25, rel_tol=1e-12) and math.isclose(inflow, outflow, rel_tol=1e-9)
    nut = read_internal_field(flow.path / "0" / "nut", flow.cells.n_cells)
    assert (nut > 0).all() and nut.max() > 10 * OpenFOAMSettings().kinematic_viscosity  # turbulent, not laminar
    u = read_internal_field(flow.path / "0" / "U", flow.cells.n_cells)
    ours = cell_velocity(scenario).reshape(-1, 3).numpy()[flow.cells.index]
    assert np.abs(u - ours).max() > 1e-3  # a RANS jet, not the potential flow


def test_one_geometry_is_solved_once_even_when_asked_at_once(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CLOSEDLOOP_FLOW_CACHE", str(tmp_path / "cache"))
    scenario = tiny_box()
    settings = OpenFOAMSettings()
    tools = [Tools(60) for _ in range(3)]
    results = [None] * 3

    def solve(i: int) -> None:
        moved = scenario.with_parameters({"source.x": 1.0 + 0.5 * i})  # the source does not change the flow
        results[i] = steady_flow(moved, settings, "test", tools[i], tmp_path / f"w{i}")

    threads = [threading.Thread(target=solve, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    solved = [sum(name == "potentialFoam" for name, _ in t.runs) for t in tools]
    assert sorted(solved) == [0, 0, 1]
    assert sorted(r.cached for r in results) == [False, True, True] and len({r.path for r in results}) == 1
    assert openfoam_flow_key(scenario, settings, "test") != openfoam_flow_key(
        scenario.with_parameters({"inlets.0.speed": 0.6}), settings, "test")
    assert openfoam_flow_key(scenario, settings, "test") != openfoam_flow_key(scenario, settings, "other version")
    (results[0].path / "cells.npz").write_bytes(b"damaged")
    again = steady_flow(scenario, settings, "test", Tools(60), tmp_path / "w3")
    assert not again.cached and again.cells.n_cells == results[0].cells.n_cells  # a damaged entry is solved again


def test_a_failed_flow_solve_leaves_no_cache_entry(tmp_path: Path, monkeypatch):
    from closedloop.simulators.openfoam import flow as flow_module
    from closedloop.simulators.openfoam.runner import OpenFOAMError

    monkeypatch.setenv("CLOSEDLOOP_FLOW_CACHE", str(tmp_path / "cache"))

    def broken(case, settings, tools):
        (case / "system" / "fvSolution").write_text("garbage {")
        return tools.run(case, "potentialFoam", "-writephi")

    monkeypatch.setattr(flow_module, "potential_foam", broken)
    with pytest.raises(OpenFOAMError, match="potentialFoam"):
        steady_flow(tiny_box(), OpenFOAMSettings(), "test", Tools(60), tmp_path / "work")
    assert not list((tmp_path / "cache" / "openfoam").glob("*/info.json"))
    assert (tmp_path / "work" / "flow-failed" / "log.potentialFoam").exists()  # its logs are kept with the case


def test_simple_foam_at_its_cap_warns_and_says_so(tmp_path: Path):
    from closedloop.simulators.openfoam.flow import UnconvergedFlow

    with pytest.warns(UnconvergedFlow, match="cap of 5 iterations"):
        flow = steady_flow(small_room(flow={"model": "navier_stokes"}), OpenFOAMSettings(flow_iterations=5),
                           "test", Tools(60), tmp_path)
    assert flow.info["converged"] is False and flow.info["iterations"] == 5
