"""Scenario data for the simulator tests: the shipped room and variants built from it (by top-level
tables, or by dotted parameter paths), and a moving Gaussian source."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path

from closedloop.simulators import Scenario, load_scenario

ROOM_TOML = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "room.toml"


def room_data() -> dict:
    """The raw TOML data of configs/scenarios/room.toml (a fresh, mutable copy)."""
    with ROOM_TOML.open("rb") as f:
        return copy.deepcopy(tomllib.load(f))


def room(**overrides) -> Scenario:
    data = room_data()
    data.update(overrides)
    return Scenario.model_validate(data)


def cluttered_data() -> dict:
    """The room with more obstacles, a partly blocked inlet, two inlets and two exhausts."""
    data = room_data()
    data["name"] = "cluttered"
    data["obstacles"] += [
        # a partition with a gap at y > 4 (the flow must go round it)
        {"name": "partition", "min": [3.0, 0.0, 0.0], "max": [3.5, 4.0, 3.0]},
        # a cabinet in the x+/y+ corner, below the exhaust
        {"name": "cabinet", "min": [8.5, 4.5, 0.0], "max": [10.0, 6.0, 2.0]},
        # a column against the x- wall that blocks half of the x- inlet (cells y ∈ [1, 1.5])
        {"name": "duct", "min": [0.0, 1.0, 0.0], "max": [0.5, 1.5, 3.0]},
        # a low box in the middle
        {"name": "box", "min": [6.0, 3.5, 0.0], "max": [7.0, 5.0, 1.5]},
    ]
    data["inlets"].append({"face": "y-", "center": [1.0, 2.25], "size": [1.0, 0.5], "speed": 0.8})
    data["exhausts"].append({"face": "z+", "center": [6.0, 5.0], "size": [1.0, 1.0]})
    return data


def cluttered(**overrides) -> Scenario:
    data = cluttered_data()
    data.update(overrides)
    return Scenario.model_validate(data)


def room_with(**changes) -> Scenario:
    """The room with each dotted path (``"inlets.0.speed"``) set to its value, validated."""
    data = load_scenario(ROOM_TOML).model_dump(mode="json")
    for path, value in changes.items():
        node = data
        *parents, last = path.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value
    return Scenario.model_validate(data)


MOVING = {"x": None, "y": None, "z": None,
          "trajectory": [{"t": 0.0, "x": 1.5, "y": 4.5, "z": 1.25}, {"t": 60.0, "x": 8.5, "y": 5.0, "z": 1.25}],
          "rate": 2.0, "shape": "gaussian", "sigma": 0.4, "start": 0.0}


def boundary_flows(flow, grid) -> tuple[float, float]:
    """(volume flow in, volume flow out) through the box boundary, m³/s, from the face velocities."""
    inflow = outflow = 0.0
    for a, u in enumerate(flow.velocity):
        lo, hi = u.select(a, 0), u.select(a, grid.shape[a])
        inflow += (lo.clamp(min=0).sum() - hi.clamp(max=0).sum()).item() * grid.face_area(a)
        outflow += (hi.clamp(min=0).sum() - lo.clamp(max=0).sum()).item() * grid.face_area(a)
    return inflow, outflow
