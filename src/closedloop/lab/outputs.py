"""What ``closedloop simulate`` leaves in its output directory, and the mass budget it reports.

``OUT/<case id>.parquet`` (the case), ``OUT/<case id>.png`` (the plane at four times) and, when
the scenario asks for 3D snapshots, ``OUT/<case id>.snapshots.pt``; every file written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from closedloop.lab.atomic import atomic_path, atomic_write_bytes
from closedloop.lab.cases import reference_case, write_case
from closedloop.lab.figures import plane_series_figure
from closedloop.simulators import Scenario, SimulationResult


def write_simulation(out: Path, scenario: Scenario, result: SimulationResult,
                     identity: dict[str, Any] | None = None) -> list[Path]:
    """Write the case, its figure and any snapshots under ``out``; returns the paths written.
    ``identity``: the simulator's (part of the case id; None for the built-in solver)."""
    case_id = scenario.case_id(identity)
    path = out / f"{case_id}.parquet"
    write_case(path, reference_case(scenario, result, identity))
    figure = out / f"{case_id}.png"
    atomic_write_bytes(figure, plane_series_figure(
        result.times, result.plane, result.plane_mask,
        title=f"{scenario.name}: plane {scenario.plane.z_min}–{scenario.plane.z_max} m"))
    written = [path, figure]
    if result.snapshots:
        snap = out / f"{case_id}.snapshots.pt"
        times = sorted(result.snapshots)
        with atomic_path(snap) as tmp:
            torch.save({"times": times, "fields": [result.snapshots[t] for t in times],
                        "spacing": list(scenario.room.spacing)}, tmp)
        written.append(snap)
    return written


def mass_summary(result: SimulationResult) -> str:
    """Emitted, in the room, exhausted, and the budget's relative closing error at the last output."""
    if len(result.extra.get("mass_reported", "...")) < 3:
        return f"mass budget: reported {', '.join(result.extra['mass_reported']) or 'none'} (external simulator)"
    emitted = float(result.mass_emitted[-1])
    balance = float((result.mass_emitted[-1] - result.mass_in_domain[-1] - result.mass_exhausted[-1]).abs())
    return (f"mass: emitted {emitted:.4g}, in room {float(result.mass_in_domain[-1]):.4g}, exhausted "
            f"{float(result.mass_exhausted[-1]):.4g}, balance error {balance / max(emitted, 1e-300):.1e} relative")
