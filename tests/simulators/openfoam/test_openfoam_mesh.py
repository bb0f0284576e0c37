"""The OpenFOAM mesh is the reference's grid cell for cell: solids removed by the reference's rule, every
vent patch exactly the reference's open faces (partly covered vents included), the rest walls."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from closedloop.simulators.geometry import room_geometry, vent_faces
from closedloop.simulators.openfoam.mesh import build_mesh, vent_face_box, vent_patches
from closedloop.simulators.openfoam.runner import Tools
from closedloop.simulators.scenario import PartlyCovered
from openfoam_cases import HAVE_OPENFOAM, NO_OPENFOAM, tiny_box
from sim_test_scenarios import cluttered_data


def cluttered():
    from closedloop.simulators import Scenario

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartlyCovered)
        return Scenario.model_validate(cluttered_data())


def interface_faces(fluid: torch.Tensor) -> int:
    """Faces between a fluid and a solid cell (what subsetMesh exposes)."""
    n = 0
    for a in range(3):
        lo, hi = fluid.narrow(a, 0, fluid.shape[a] - 1), fluid.narrow(a, 1, fluid.shape[a] - 1)
        n += int((lo ^ hi).sum())
    return n


def box_faces(fluid: torch.Tensor) -> int:
    """Faces of fluid cells on the box boundary."""
    return sum(int(fluid.select(a, 0).sum() + fluid.select(a, fluid.shape[a] - 1).sum()) for a in range(3))


@pytest.fixture(scope="module")
def meshed(tmp_path_factory):
    if not HAVE_OPENFOAM:
        pytest.skip(NO_OPENFOAM)
    scenario = cluttered()
    case = tmp_path_factory.mktemp("mesh")
    tools = Tools(timeout=120)
    return scenario, build_mesh(scenario, case, tools), case, tools


def test_solid_cells_are_removed_by_the_reference_rule(meshed):
    scenario, cells, _, _ = meshed
    fluid = room_geometry(scenario).fluid
    assert cells.n_cells == int(fluid.sum()) < fluid.numel()
    flat = np.nonzero(fluid.reshape(-1).numpy())[0]
    assert np.array_equal(np.sort(cells.index), flat)  # one OpenFOAM cell per fluid cell of our grid
    assert np.allclose(cells.volume, math.prod(scenario.room.spacing), rtol=1e-12)
    field = cells.to_grid(np.arange(cells.n_cells, dtype=float) + 1)
    assert torch.equal(field > 0, fluid)


def test_vent_patches_are_the_reference_open_faces(meshed):
    scenario, cells, _, _ = meshed
    geometry = room_geometry(scenario)
    for name, vent in vent_patches(scenario):
        ours = int(vent_faces(vent, geometry).sum())
        assert cells.patches[name] == ours > 0, name
    # the partly covered x- inlet keeps only its open faces: 1 of its 2 × 1 faces is behind the duct
    assert cells.patches["inlet_0"] == 1


def test_walls_and_obstacles_take_every_other_boundary_face(meshed):
    scenario, cells, _, _ = meshed
    fluid = room_geometry(scenario).fluid
    vents = sum(cells.patches[name] for name, _ in vent_patches(scenario))
    assert cells.patches["obstacles"] == interface_faces(fluid)
    assert cells.patches["walls"] == box_faces(fluid) - vents
    assert cells.patches["reference"] == 0


def test_the_face_box_holds_exactly_the_open_face_centres():
    scenario = cluttered()
    geometry = room_geometry(scenario)
    inlet = scenario.inlets[1]  # y- face, (x, z) centre (1.0, 2.25), 1.0 × 0.5
    (lo, hi) = vent_face_box(inlet, geometry)
    assert lo[1] < 0 < hi[1] and hi[1] - lo[1] == pytest.approx(0.25)
    assert (lo[0], hi[0]) == pytest.approx((0.625, 1.375))  # centres 0.75 and 1.25, padded by h/4
    assert (lo[2], hi[2]) == pytest.approx((2.125, 2.375))  # centre 2.25


def test_a_mesh_without_obstacles(tmp_path: Path):
    if not HAVE_OPENFOAM:
        pytest.skip(NO_OPENFOAM)
    scenario = tiny_box(obstacles=[])
    cells = build_mesh(scenario, tmp_path / "case", Tools(timeout=60))
    assert cells.n_cells == math.prod(scenario.room.shape) and "obstacles" not in cells.patches
