"""The campaign store: cases as parquet, the ledger, checkpoints. Every write is atomic.

A campaign directory::

    ledger.parquet        one row per case (id, round, status, parameters, timings, errors, flow run)
    cases/<id>.parquet    one row per output time; the plane field as a fixed-shape tensor column
    models/<name>.pt      surrogate checkpoints (state dicts; loaded with weights_only=True)
    models/index.json     sha256 and size of each checkpoint
    figures/              learning curves, plane images, one report per round
    task-cache/           Prefect's records of finished simulate tasks (keyed by case id)
    quarantine/           damaged files set aside when the campaign found them

The ledger records the sha256 of each case file and ``models/index.json`` that of each checkpoint,
so a file damaged after it was written (a bad disk, a careless copy) is found before anything is
trained on it (:class:`IntegrityError`).
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

import closedloop
from closedloop.lab import faults
from closedloop.lab.atomic import atomic_path, atomic_write, atomic_write_text, remove_temp_files
from closedloop.simulators.scenario import Scenario

METADATA_KEY = b"closedloop"
FORMAT_VERSION = 1


class IntegrityError(ValueError):
    """A stored file differs from the checksum recorded when it was written."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None) -> None:
    """Raise :class:`IntegrityError` (naming the file, both digests and its size) on a mismatch."""
    if not expected:
        return
    if not path.is_file():
        raise IntegrityError(f"{path}: file is missing (sha256 {expected[:16]}… was recorded)")
    actual = file_sha256(path)
    if actual != expected:
        raise IntegrityError(f"{path}: checksum mismatch: recorded sha256 {expected[:16]}…, file has "
                             f"{actual[:16]}… ({path.stat().st_size} bytes); the file was damaged after it "
                             "was written")


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
        return self.scenario.case_id()


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


def reference_case(scenario: Scenario, result: Any, **provenance: Any) -> Case:
    """The case of a reference simulation (a ``simulators.SimulationResult``), ready to write."""
    return Case(scenario=scenario, times=result.times, plane=result.plane, plane_mask=result.plane_mask,
                probes=result.probes,
                budget={"mass_in_domain": result.mass_in_domain, "mass_emitted": result.mass_emitted,
                        "mass_exhausted": result.mass_exhausted},
                provenance=make_provenance(producer="reference", device=result.device, dtype=result.dtype,
                                           steps=result.steps, **provenance),
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


# ---------------------------------------------------------------------------------------- ledger
LEDGER_COLUMNS: dict[str, str] = {
    "case_id": "string", "round": "int64", "status": "string", "strategy": "string",
    "parameters": "string", "proposed_at": "string", "finished_at": "string",
    "sim_seconds": "float64", "rel_l2": "float64", "log_rel_l2": "float64",
    "validated_by": "string", "flow_run_id": "string", "error": "string", "case_sha256": "string",
}
STATUSES = ("proposed", "done", "failed")


def empty_ledger() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in LEDGER_COLUMNS.items()})


def normalise_ledger(df: pd.DataFrame) -> pd.DataFrame:
    for col, dtype in LEDGER_COLUMNS.items():
        if col not in df.columns:
            df[col] = pd.Series([None] * len(df), dtype=dtype)
    df = df[list(LEDGER_COLUMNS) + [c for c in df.columns if c not in LEDGER_COLUMNS]]
    return df.astype({c: t for c, t in LEDGER_COLUMNS.items()}).reset_index(drop=True)


class CampaignStore:
    """A campaign directory: paths and atomic reads/writes of its ledger, cases and models."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        for sub in (self.cases_dir, self.models_dir, self.figures_dir):
            sub.mkdir(parents=True, exist_ok=True)

    @property
    def state_path(self) -> Path:
        return self.root / "campaign.json"

    @property
    def cache_dir(self) -> Path:
        """Where Prefect stores the records of finished simulate tasks (see tasks/campaign.py)."""
        return self.root / "task-cache"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    def remove_temp_files(self) -> list[Path]:
        """Clear temporary files a killed writer left behind (call only under the campaign lock)."""
        return [p for d in (self.root, self.cases_dir, self.models_dir, self.figures_dir)
                for p in remove_temp_files(d)]

    def quarantine(self, path: Path) -> Path:
        """Move a damaged file out of the way (kept for inspection, never read again)."""
        self.quarantine_dir.mkdir(exist_ok=True)
        dest = self.quarantine_dir / f"{path.name}.{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S%f}.damaged"
        shutil.move(str(path), dest)
        return dest

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.parquet"

    @property
    def cases_dir(self) -> Path:
        return self.root / "cases"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    # cases
    def case_path(self, case_id: str) -> Path:
        return self.cases_dir / f"{case_id}.parquet"

    def has_case(self, case_id: str) -> bool:
        """True when a complete, readable closedloop case file exists (a half-written one never does)."""
        path = self.case_path(case_id)
        if not path.exists():
            return False
        try:
            meta = pq.read_schema(path).metadata or {}
        except (OSError, pa.ArrowInvalid):
            return False
        return METADATA_KEY in meta

    def write_case(self, case: Case) -> Path:
        path = self.case_path(case.case_id)
        write_case(path, case)
        return path

    def read_case(self, case_id: str, sha256: str | None = None) -> Case:
        """Read a case; with ``sha256`` (from the ledger) verify the file first."""
        path = self.case_path(case_id)
        check_sha256(path, sha256)
        return read_case(path)

    def case_metadata(self, case_id: str) -> dict[str, Any]:
        return json.loads(pq.read_schema(self.case_path(case_id)).metadata[METADATA_KEY])

    # ledger
    def read_ledger(self) -> pd.DataFrame:
        if not self.ledger_path.exists():
            return empty_ledger()
        try:
            df = pd.read_parquet(self.ledger_path)
        except (OSError, pa.ArrowInvalid) as err:
            raise IntegrityError(f"{self.ledger_path}: the ledger is unreadable ({err}); it is the campaign's "
                                 "record and cannot be rebuilt automatically: restore it from a backup") from err
        return normalise_ledger(df)

    def write_ledger(self, df: pd.DataFrame) -> None:
        df = normalise_ledger(df.copy())
        if df["case_id"].duplicated().any():
            dup = df.loc[df["case_id"].duplicated(), "case_id"].tolist()
            raise ValueError(f"ledger: duplicate case_id rows {dup}")
        bad = set(df["status"].dropna()) - set(STATUSES)
        if bad:
            raise ValueError(f"ledger.status: unknown values {sorted(bad)}; allowed {STATUSES}")
        atomic_write(self.ledger_path, lambda tmp: df.to_parquet(tmp, index=False), label="ledger")

    def upsert(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Insert rows, or update the given fields of rows with the same ``case_id``."""
        df = self.read_ledger()
        for row in rows:
            if "case_id" not in row:
                raise ValueError("ledger row without case_id")
            hit = df.index[df["case_id"] == row["case_id"]]
            if len(hit):
                for key, value in row.items():
                    if key not in df.columns:
                        df[key] = pd.Series([None] * len(df), dtype="object")
                    df.loc[hit[0], key] = value
            else:
                df = pd.concat([df, normalise_ledger(pd.DataFrame([row]))], ignore_index=True)
        self.write_ledger(df)
        return self.read_ledger()

    # checkpoints
    def model_path(self, name: str) -> Path:
        return self.models_dir / f"{name}.pt"

    @property
    def model_index_path(self) -> Path:
        return self.models_dir / "index.json"

    def read_model_index(self) -> dict[str, dict[str, Any]]:
        """``{name: {"sha256", "bytes", "indexed"}}`` of the checkpoints written (or adopted)."""
        if not self.model_index_path.exists():
            return {}
        try:
            index = json.loads(self.model_index_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise IntegrityError(f"{self.model_index_path}: unreadable checkpoint index ({err}); delete it "
                                 "and the checkpoints are re-indexed from the files that load") from err
        return index if isinstance(index, dict) else {}

    def index_checkpoint(self, name: str, sha256: str | None) -> None:
        """Record (or with None, forget) a checkpoint's checksum."""
        index = self.read_model_index()
        if sha256 is None:
            index.pop(name, None)
        else:
            index[name] = {"sha256": sha256, "bytes": self.model_path(name).stat().st_size,
                           "indexed": now_iso()}
        atomic_write_text(self.model_index_path, json.dumps(index, indent=1, sort_keys=True), label="index")

    def has_checkpoint(self, name: str) -> bool:
        """True when the checkpoint file exists and its checksum is indexed."""
        return self.model_path(name).exists() and name in self.read_model_index()

    def save_checkpoint(self, name: str, checkpoint: dict[str, Any]) -> Path:
        """Write the checkpoint atomically, then index its checksum."""
        path = self.model_path(name)
        with atomic_path(path, label="checkpoint") as tmp:
            torch.save(checkpoint, tmp)
            digest = file_sha256(tmp)
        faults.point("checkpoint:written", name)
        self.index_checkpoint(name, digest)
        return path

    def load_checkpoint(self, name: str) -> dict[str, Any]:
        """Load a checkpoint (weights only), first checking it against its indexed checksum."""
        path = self.model_path(name)
        entry = self.read_model_index().get(name)
        check_sha256(path, entry["sha256"] if entry else None)
        return torch.load(path, weights_only=True, map_location="cpu")
