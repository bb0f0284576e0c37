"""Small scenarios for the OpenFOAM adapter's tests, and the skip when OpenFOAM is not installed."""
from __future__ import annotations

import shutil

import pytest

from closedloop.simulators import Scenario
from sim_test_scenarios import room_data

HAVE_OPENFOAM = shutil.which("blockMesh") is not None and shutil.which("scalarTransportFoam") is not None
NO_OPENFOAM = ("OpenFOAM is not installed (blockMesh / scalarTransportFoam not on PATH; on Debian: apt-get install "
               "openfoam, as .ci/run does)")
requires_openfoam = pytest.mark.skipif(not HAVE_OPENFOAM, reason=NO_OPENFOAM)


def small_room(**overrides) -> Scenario:
    """configs/scenarios/room.toml: 20 × 12 × 6 cells of 0.5 m, a pillar and a desk, 120 s."""
    data = room_data()
    data.update(overrides)
    return Scenario.model_validate(data)


def tiny_box(**overrides) -> Scenario:
    """A 4 × 2 × 2 m box of 0.5 m cells (128 cells), one inlet, one exhaust, one pillar: seconds in OpenFOAM."""
    data = {
        "name": "tiny", "eddy_diffusivity": 0.02,
        "room": {"size": [4.0, 2.0, 2.0], "cell_size": 0.5},
        "obstacles": [{"name": "pillar", "min": [2.0, 0.5, 0.0], "max": [2.5, 1.0, 2.0]}],
        "inlets": [{"face": "x-", "center": [1.0, 1.5], "size": [1.0, 0.5], "speed": 0.5}],
        "exhausts": [{"face": "x+", "center": [1.0, 0.5], "size": [1.0, 1.0]}],
        "source": {"x": 1.25, "y": 1.25, "z": 1.0, "rate": 1.0},
        "plane": {"z_min": 0.5, "z_max": 1.5},
        "probes": [{"name": "middle", "position": [3.0, 1.0, 1.0]}],
        "time": {"horizon": 20.0, "output_interval": 5.0},
    }
    data.update(overrides)
    return Scenario.model_validate(data)
