"""A case on disk: one parquet file, one row per output time, the plane field as a tensor column.

The file's metadata holds the scenario, the grid, the plane mask and the provenance (code version,
config hash, seed, device); ``pandas.read_parquet`` opens it. Every simulator's output and every
surrogate prediction is written in this one format.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

import closedloop
from closedloop.lab.atomic import atomic_write, file_sha256
from closedloop.simulators.scenario import Scenario


METADATA_KEY = b"closedloop"


FORMAT_VERSION = 1


@dataclass
class Case:
    """A plane series on disk: from the reference simulator or from the surrogate."""

    scenario: Scenario
    times: torch.Tensor  # (T,) seconds
    plane: torch.Tensor  # (T, nx, ny)
    plane_mask: torch.Tensor  # (nx, ny) bool
    probes: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (T,)
    budget: dict[str, torch.Tensor] = field(default_factory=dict)  # mass_* -> (T,)
    provenance: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)

    @property
    def case_id(self) -> str:
        """The scenario's hash and, for an external simulator, its identity (``Scenario.case_id``)."""
        return self.scenario.case_id(self.provenance.get("simulator_identity"))


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit when run from a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{closedloop.__version__}+{commit}" if commit else closedloop.__version__


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make_provenance(*, producer: str, device: str, seed: int | None = None,
                    config_hash: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"producer": producer, "code_version": code_version(), "torch": torch.__version__,
            "device": device, "seed": seed, "config_hash": config_hash, "created": now_iso(),
            **extra}


def reference_case(scenario: Scenario, result: Any, identity: dict[str, Any] | None = None,
                   **provenance: Any) -> Case:
    """The case of a reference simulation (a ``simulators.SimulationResult``), ready to write.

    ``identity``: the simulator's (``Simulator.identity()``; None for the built-in solver), part of the
    case id. The provenance names the simulator, its version and the simulation's CPU seconds.
    """
    who = {"simulator": getattr(result, "simulator", "builtin"),
           "simulator_version": getattr(result, "simulator_version", ""),
           "cpu_seconds": getattr(result, "cpu_seconds", None)}
    if identity is not None:
        who["simulator_identity"] = identity
    if "mass_reported" in result.extra:
        who["mass_reported"] = result.extra["mass_reported"]
    return Case(scenario=scenario, times=result.times, plane=result.plane, plane_mask=result.plane_mask,
                probes=result.probes,
                budget={"mass_in_domain": result.mass_in_domain, "mass_emitted": result.mass_emitted,
                        "mass_exhausted": result.mass_exhausted},
                provenance=make_provenance(producer="reference", device=result.device, dtype=result.dtype,
                                           steps=result.steps, **who, **provenance),
                grid={"shape": result.extra["grid_shape"], "spacing": list(scenario.room.spacing),
                      "plane": scenario.plane.model_dump()})


def case_table(case: Case) -> pa.Table:
    """The Arrow table of a case: ``time``, ``plane`` (tensor), probes and budget columns."""
    plane = case.plane.detach().cpu().to(torch.float64).numpy()
    t, nx, ny = plane.shape
    tensor_type = pa.fixed_shape_tensor(pa.float64(), [nx, ny])
    storage = pa.FixedSizeListArray.from_arrays(pa.array(plane.reshape(-1)), nx * ny)
    columns: dict[str, pa.Array] = {
        "time": pa.array(case.times.detach().cpu().numpy().astype(np.float64)),
        "plane": pa.ExtensionArray.from_storage(tensor_type, storage),
    }
    for name, series in case.probes.items():
        columns[f"probe:{name}"] = pa.array(series.detach().cpu().numpy().astype(np.float64))
    for name, series in case.budget.items():
        columns[name] = pa.array(series.detach().cpu().numpy().astype(np.float64))
    meta = {"format_version": FORMAT_VERSION, "case_id": case.case_id,
            "scenario": case.scenario.model_dump(mode="json"), "grid": case.grid,
            "plane_mask": case.plane_mask.to(torch.int8).tolist(), "provenance": case.provenance}
    return pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})


def write_case(path: str | Path, case: Case) -> str:
    """Write a case atomically as parquet; returns the sha256 of the bytes written."""
    table = case_table(case)
    digest: list[str] = []

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp)
        digest.append(file_sha256(tmp))  # of the temporary file, i.e. exactly what is renamed

    atomic_write(path, write, label="case")
    return digest[0]


def read_case(path: str | Path) -> Case:
    """Read a case written by :func:`write_case`; a file that is not one raises ValueError."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise ValueError(f"{path}: not a readable parquet case file ({err})") from err
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path}: parquet file has no closedloop metadata; not a case file")
    meta = json.loads(raw)
    plane_col = table.column("plane").combine_chunks()
    if isinstance(plane_col, pa.ExtensionArray):
        plane_np = plane_col.to_numpy_ndarray()
    else:  # pragma: no cover - extension type not registered
        plane_np = np.stack([np.asarray(v) for v in plane_col.to_pylist()])
    mask = torch.tensor(meta["plane_mask"], dtype=torch.bool)
    plane = torch.from_numpy(np.array(plane_np, dtype=np.float64)).reshape(-1, *mask.shape)
    probes = {n.removeprefix("probe:"): torch.from_numpy(table.column(n).to_numpy().copy())
              for n in table.column_names if n.startswith("probe:")}
    budget = {n: torch.from_numpy(table.column(n).to_numpy().copy())
              for n in table.column_names if n.startswith("mass_")}
    return Case(scenario=Scenario.model_validate(meta["scenario"]),
                times=torch.from_numpy(table.column("time").to_numpy().copy()), plane=plane,
                plane_mask=mask, probes=probes, budget=budget, provenance=meta["provenance"],
                grid=meta["grid"])


def read_case_dir(path: str | Path) -> list[Case]:
    """All cases in a directory (or a campaign directory's ``cases/``), sorted by file name."""
    path = Path(path)
    if (path / "cases").is_dir():
        path = path / "cases"
    if path.is_file():
        return [read_case(path)]
    files = sorted(path.glob("*.parquet"))
    if not files:
        raise ValueError(f"{path}: no case files (*.parquet) found")
    return [read_case(f) for f in files]
