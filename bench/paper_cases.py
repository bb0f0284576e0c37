"""The hall data set of the paper table: 53 Sobol scenarios and 5 moving-source (OOD) scenarios.

Design (3 dimensions): source (x, y) over the hall at z = 1.375 m (inside the 1.25–1.75 m plane
band) and emission rate in [0.5, 2] mg/s, scrambled Sobol (seed 0) with rejection of points whose
source box would touch a solid (pillar, partition, furniture) or lie within 0.5 m of a wall. The flow
(Navier–Stokes, eddy-viscosity diffusivity) is the same for all: inlet speed is fixed because each
new inflow costs a ~45 s Navier–Stokes solve on 2 cores. Cases 0, 2, 4, … train; 1, 3, … test.

Out of distribution: 5 walking trajectories (waypoints, linear in time) never seen in training,
which sees static sources only.

``python bench/paper_cases.py`` simulates what is missing into ``bench/data/paper_table/cases``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from closedloop.lab.store import read_case, reference_case, write_case
from closedloop.simulators import load_scenario, simulate
from closedloop.simulators.geometry import room_geometry
from closedloop.simulators.scenario import Scenario

HALL = Path(__file__).resolve().parent.parent / "configs" / "scenarios" / "hall.toml"
DATA = Path(__file__).resolve().parent / "data" / "paper_table"
N_CASES = 53
SOURCE_Z = 1.375
BOUNDS = {"x": (0.5, 24.0), "y": (0.5, 12.5), "rate": (0.5, 2.0)}

# (t, x, y) waypoints; z = SOURCE_Z. Walks past pillars, through the partition gap, along walls.
TRAJECTORIES = {
    "walk-diagonal": [(0, 2.0, 2.0), (270, 11.0, 9.0), (600, 22.0, 11.0)],
    "walk-around-pillar": [(0, 4.0, 3.0), (200, 8.0, 3.0), (400, 8.0, 6.5), (600, 4.0, 6.5)],
    "walk-through-gap": [(0, 9.0, 10.0), (300, 15.0, 10.0), (600, 15.0, 3.0)],
    "walk-back-and-forth": [(0, 16.0, 6.5), (150, 22.0, 6.5), (300, 16.0, 6.5), (450, 22.0, 6.5),
                            (600, 16.0, 6.5)],
    "stand-then-walk": [(0, 3.0, 11.0), (300, 3.0, 11.0), (600, 10.0, 8.0)],
}


def source_clear(base: Scenario, x: float, y: float) -> bool:
    """No solid within one cell of the source box, and 0.5 m from the walls."""
    lx, ly, _ = base.room.size
    if not (0.5 <= x <= lx - 0.5 and 0.5 <= y <= ly - 0.5):
        return False
    for ob in base.obstacles:
        if ob.min[2] <= SOURCE_Z + 0.25 and (ob.min[0] - 0.5 <= x <= ob.max[0] + 0.5) \
                and (ob.min[1] - 0.5 <= y <= ob.max[1] + 0.5):
            return False
    return True


def design_points(base: Scenario, n: int = N_CASES, seed: int = 0) -> list[dict[str, float]]:
    engine = torch.quasirandom.SobolEngine(len(BOUNDS), scramble=True, seed=seed)
    out: list[dict[str, float]] = []
    while len(out) < n:
        u = engine.draw(1, dtype=torch.float64)[0]
        p = {k: lo + float(v) * (hi - lo) for (k, (lo, hi)), v in zip(BOUNDS.items(), u)}
        if source_clear(base, p["x"], p["y"]):
            out.append({k: round(v, 4) for k, v in p.items()})
    return out


def static_scenario(base: Scenario, i: int, p: dict[str, float]) -> Scenario:
    return base.model_copy(update={"name": f"hall-{i:02d}"}).with_parameters(
        {"source.x": p["x"], "source.y": p["y"], "source.z": SOURCE_Z, "source.rate": p["rate"]})


def moving_scenario(base: Scenario, name: str) -> Scenario:
    data = base.model_dump(mode="json")
    data["name"] = name
    data["source"] = {"trajectory": [{"t": t, "x": x, "y": y, "z": SOURCE_Z} for t, x, y in TRAJECTORIES[name]],
                      "rate": 1.0}
    return Scenario.model_validate(data)


def scenarios() -> tuple[list[Scenario], list[Scenario]]:
    base = load_scenario(HALL)
    geometry = room_geometry(base)
    del geometry
    static = [static_scenario(base, i, p) for i, p in enumerate(design_points(base))]
    moving = [moving_scenario(base, name) for name in TRAJECTORIES]
    return static, moving


def case_path(scenario: Scenario) -> Path:
    return DATA / "cases" / f"{scenario.case_id()}.parquet"


def ensure_cases(items: list[Scenario], log=print) -> list:
    cases = []
    for i, sc in enumerate(items):
        path = case_path(sc)
        if not path.exists():
            t0 = time.perf_counter()
            result = simulate(sc, device="cpu")
            write_case(path, reference_case(sc, result, seed=0))
            log(f"[{i + 1}/{len(items)}] {sc.name} simulated in {time.perf_counter() - t0:.1f} s "
                f"(transport {result.wall_seconds:.1f} s)")
        cases.append(read_case(path))
    return cases


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("threads", nargs="?", type=int, default=1, help="torch threads (default 1)")
    torch.set_num_threads(ap.parse_args().threads)
    static, moving = scenarios()
    ensure_cases(moving + static)
