"""Reading OpenFOAM's output: fields onto our grid through the cell map, the reference's own plane and
probe reductions, and the budget from the function objects' tables (checked on a hand-made case)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from closedloop.simulators.geometry import room_geometry
from closedloop.simulators.openfoam.foamfile import FoamFormatError, write_foam
from closedloop.simulators.openfoam.fields import nonuniform
from closedloop.simulators.openfoam.mesh import CellMap
from closedloop.simulators.openfoam.reader import read_series, time_directory
from closedloop.simulators.openfoam.transport import Segment, TransportPlan
from closedloop.simulators.plane import plane_reduction
from openfoam_cases import tiny_box


def fake_case(tmp_path: Path, steps_short: int = 0):
    """tiny_box's outputs at 5, 10, 15, 20 s written as OpenFOAM would, cells in reverse order."""
    scenario = tiny_box(source={"x": 1.25, "y": 1.25, "z": 1.0, "rate": 2.0, "start": 0.0, "stop": 10.0})
    geometry = room_geometry(scenario)
    flat = np.nonzero(geometry.fluid.reshape(-1).numpy())[0][::-1].copy()  # OpenFOAM's order is its own
    cells = CellMap(shape=scenario.room.shape, index=flat, volume=np.full(flat.size, 0.125),
                    patches={"walls": 1, "inlet_0": 2, "exhaust_0": 4})
    plan = TransportPlan(dt=1.0, steps=20, steps_per_output=5, segments=[Segment(0, 10, (1.25, 1.25, 1.0))],
                         source_groups=1)
    rng = np.random.default_rng(0)
    truth = {}
    for k, t in enumerate((5.0, 10.0, 15.0, 20.0)):
        c = rng.random(flat.size)
        truth[t] = c
        name = f"{t:g}" if k != 1 else "10.0000000001"  # OpenFOAM rounds time names
        write_foam(tmp_path / name / "c", "volScalarField", {"internalField": nonuniform(c)})
    flux = np.linspace(0.0, 0.1, plan.steps - steps_short)
    for name, table, col in (("exhaust_0", "surfaceFieldValue", flux), ("mass", "volFieldValue", np.ones_like(flux))):
        path = tmp_path / "postProcessing" / name / "0" / f"{table}.dat"
        path.parent.mkdir(parents=True)
        path.write_text("# Time value\n" + "".join(f"{i + 1}\t{float(v)!r}\n" for i, v in enumerate(col)))
    return scenario, geometry, cells, plan, truth, flux


def test_fields_budget_and_probes_from_the_files(tmp_path: Path):
    scenario, geometry, cells, plan, truth, flux = fake_case(tmp_path)
    series = read_series(scenario, geometry, cells, plan, tmp_path)
    grid = cells.to_grid(truth[15.0])
    assert torch.equal(series.plane[3], plane_reduction(scenario, geometry).average(grid))
    assert series.plane[0].abs().max() == 0 and series.plane.shape == (5, 8, 4)
    assert series.mass_in_domain[2].item() == pytest.approx(truth[10.0].sum() * 0.125, rel=1e-14)
    assert series.mass_emitted.tolist() == [0.0, 10.0, 20.0, 20.0, 20.0]  # 2 mg/s over (0, 10] s
    assert series.mass_exhausted[4].item() == pytest.approx(flux.sum(), rel=1e-14)
    assert series.mass_exhausted[1].item() == pytest.approx(flux[:5].sum(), rel=1e-14)
    probe = series.probes["middle"]  # at (3.0, 1.0, 1.0): cell (6, 2, 2)
    assert probe[3].item() == grid[6, 2, 2].item() and probe[0].item() == 0.0


def test_a_missing_output_or_a_short_table_is_a_clear_error(tmp_path: Path):
    scenario, geometry, cells, plan, *_ = fake_case(tmp_path / "short", steps_short=3)
    with pytest.raises(FoamFormatError, match="exhaust_0's flux table has 17 rows for 20 steps"):
        read_series(scenario, geometry, cells, plan, tmp_path / "short")
    scenario, geometry, cells, plan, *_ = fake_case(tmp_path / "gone")
    for f in (tmp_path / "gone" / "20").iterdir():
        f.unlink()
    (tmp_path / "gone" / "20").rmdir()
    with pytest.raises(FoamFormatError, match="no output directory for t = 20 s"):
        read_series(scenario, geometry, cells, plan, tmp_path / "gone")
    assert time_directory(tmp_path / "gone", 10.0, 0.25).name == "10.0000000001"
