"""The 0/ files: the vents balance (inflow = outflow), the scalar enters clean and diffuses through no
inlet, and each flow model gets the fields its solver needs."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from closedloop.simulators import Scenario
from closedloop.simulators.geometry import room_geometry, vent_faces
from closedloop.simulators.openfoam.fields import INLET_DIFFUSIVITY, supply, vent_velocities, write_flow_fields, write_scalar_fields
from closedloop.simulators.openfoam.foamfile import read_internal_field, read_patch_value
from closedloop.simulators.openfoam.mesh import CellMap, vent_patches
from closedloop.simulators.openfoam.settings import OpenFOAMSettings
from closedloop.simulators.scenario import PartlyCovered
from sim_test_scenarios import cluttered_data


def cluttered() -> Scenario:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartlyCovered)
        return Scenario.model_validate(cluttered_data())


def cell_map(scenario: Scenario) -> CellMap:
    """The patches a mesh of ``scenario`` has (face counts by the reference's rule), no cells needed."""
    geometry = room_geometry(scenario)
    patches = {"walls": 1, "obstacles": 1, "reference": 0}
    patches.update({name: int(vent_faces(v, geometry).sum()) for name, v in vent_patches(scenario)})
    n = int(geometry.fluid.sum())
    return CellMap(shape=scenario.room.shape, index=np.arange(n), volume=np.ones(n), patches=patches)


def test_the_exhausts_take_out_what_the_inlets_blow_in():
    scenario = cluttered()  # two inlets (one half covered, one on y-), exhausts on x+ and on the ceiling
    cells = cell_map(scenario)
    h = scenario.room.spacing
    vel = vent_velocities(scenario, cells)
    flux = {}
    for name, vent in vent_patches(scenario):
        a = vent.normal_axis
        outward = -1.0 if vent.face[1] == "-" else 1.0
        flux[name] = outward * vel[name][a] * cells.patches[name] * math.prod(h) / h[a]
    inflow = -sum(v for k, v in flux.items() if k.startswith("inlet"))
    outflow = sum(v for k, v in flux.items() if k.startswith("exhaust"))
    assert inflow > 0 and math.isclose(inflow, outflow, rel_tol=1e-14)
    assert math.isclose(inflow, supply(scenario, cells), rel_tol=1e-14)
    speeds = {abs(vel[k][v.normal_axis]) for k, v in vent_patches(scenario) if k.startswith("exhaust")}
    assert len(speeds) == 1  # one uniform exhaust speed, as the reference's boundary_velocity


def test_the_scalar_enters_clean_and_no_diffusion_passes_an_inlet(tmp_path: Path):
    scenario = cluttered()
    cells = cell_map(scenario)
    k = np.linspace(0.02, 0.05, cells.n_cells)
    write_scalar_fields(cells, k, tmp_path)
    assert np.array_equal(read_internal_field(tmp_path / "0" / "Kc", cells.n_cells), k)
    assert read_patch_value(tmp_path / "0" / "Kc", "inlet_0")[0] == INLET_DIFFUSIVITY < 1e-20
    assert read_patch_value(tmp_path / "0" / "c", "inlet_1")[0] == 0.0
    text = (tmp_path / "0" / "c").read_text()
    assert "inletOutlet" in text and text.count("zeroGradient") == 3  # walls, obstacles, reference


def test_each_flow_model_gets_its_fields(tmp_path: Path):
    scenario = cluttered()
    cells = cell_map(scenario)
    write_flow_fields(scenario, cells, OpenFOAMSettings(), tmp_path / "potential", turbulent=False)
    assert sorted(p.name for p in (tmp_path / "potential" / "0").iterdir()) == ["U", "p"]
    # potentialFoam: p fixed on the face-less reference patch, so Φ stays pure Neumann and adjustPhi is skipped
    assert read_patch_value(tmp_path / "potential" / "0" / "p", "reference")[0] == 0.0
    write_flow_fields(scenario, cells, OpenFOAMSettings(), tmp_path / "rans", turbulent=True)
    assert sorted(p.name for p in (tmp_path / "rans" / "0").iterdir()) == ["U", "epsilon", "k", "nut", "p"]
    assert "noSlip" in (tmp_path / "rans" / "0" / "U").read_text()
    k_in = read_patch_value(tmp_path / "rans" / "0" / "k", "inlet_0")[0]
    assert math.isclose(k_in, 1.5 * (0.05 * 0.8) ** 2)  # I = 5 % of the fastest inlet (0.8 m/s)
