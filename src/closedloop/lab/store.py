"""The campaign store: a campaign directory's ledger, cases, checkpoints and state, written atomically.

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
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from closedloop.lab import faults, journal
from closedloop.lab.atomic import (IntegrityError, atomic_path, atomic_write, atomic_write_text, check_sha256,
                                   file_sha256, remove_temp_files)
# the case format is owned by lab.cases, the ledger's columns and views by lab.ledger; re-exported
from closedloop.lab.cases import (FORMAT_VERSION, METADATA_KEY, Case, case_table, code_version, make_provenance,
                                  now_iso, read_case, read_case_dir, reference_case, write_case)
from closedloop.lab.ledger import LEDGER_COLUMNS, STATUSES, empty_ledger, normalise_ledger
from closedloop.surrogates.checkpoint import read_checkpoint, write_checkpoint

__all__ = ["CampaignStore", "IntegrityError", "file_sha256", "check_sha256", "FORMAT_VERSION", "METADATA_KEY", "Case",
           "case_table", "code_version", "make_provenance", "now_iso", "read_case", "read_case_dir",
           "reference_case", "write_case", "LEDGER_COLUMNS", "STATUSES", "empty_ledger", "normalise_ledger"]


def apply_upsert(df: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``df`` with ``rows`` inserted, or their fields updated where the ``case_id`` is there."""
    df = df.copy()
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
    return df


def checked_ledger(df: pd.DataFrame) -> pd.DataFrame:
    """The normalised ledger; ValueError for duplicate case ids or an unknown status."""
    df = normalise_ledger(df.copy())
    if df["case_id"].duplicated().any():
        dup = df.loc[df["case_id"].duplicated(), "case_id"].tolist()
        raise ValueError(f"ledger: duplicate case_id rows {dup}")
    bad = set(df["status"].dropna()) - set(STATUSES)
    if bad:
        raise ValueError(f"ledger.status: unknown values {sorted(bad)}; allowed {STATUSES}")
    return df


class CampaignStore:
    """A campaign directory: paths and atomic reads/writes of its ledger, cases and models."""

    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root)
        if create:
            for sub in (self.cases_dir, self.models_dir, self.figures_dir):
                sub.mkdir(parents=True, exist_ok=True)

    @classmethod
    def existing(cls, root: str | Path) -> CampaignStore:
        """The store of a campaign directory that has a ledger (nothing is created); ValueError if none."""
        store = cls(root, create=False)
        if not store.ledger_path.is_file():
            raise ValueError(f"{store.root}: no ledger.parquet here; not a campaign directory")
        return store

    @property
    def state_path(self) -> Path:
        return self.root / "campaign.json"

    def artifact_key(self, name: str, *parts: str | int) -> str:
        """A Prefect artifact key that names this campaign and directory: ``NAME-DIGEST-PARTS``
        (DIGEST: 8 hex digits of the resolved directory), so two campaigns of one name never
        share a key. Lower-case letters, digits and dashes, as Prefect requires."""
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:8]
        words = [name, digest, *map(str, parts)]
        return "-".join(re.sub(r"[^a-z0-9]+", "-", w.lower()).strip("-") for w in words)

    def read_state(self) -> dict[str, Any]:
        """``campaign.json`` (the campaign's identity and summary), or {} before the first run."""
        if not self.state_path.exists():
            return {}
        try:
            return json.loads(self.state_path.read_text())
        except json.JSONDecodeError as err:
            raise IntegrityError(f"{self.state_path}: unreadable campaign state ({err}); it holds the campaign's "
                                 "identity, restore it or use a new --dir") from err

    def write_state(self, state: dict[str, Any]) -> None:
        atomic_write_text(self.state_path, json.dumps(state, indent=2, sort_keys=True), label="state")

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
    @property
    def journal_path(self) -> Path:
        return self.root / "ledger.journal"

    def read_ledger(self) -> pd.DataFrame:
        if not self.ledger_path.exists():
            return empty_ledger()
        try:
            df = pd.read_parquet(self.ledger_path)
        except (OSError, pa.ArrowInvalid) as err:
            raise IntegrityError(f"{self.ledger_path}: the ledger is unreadable ({err}); rebuild it from its journal "
                                 f"with `closedloop campaign repair {self.root}`") from err
        return normalise_ledger(df)

    def write_ledger(self, df: pd.DataFrame) -> None:
        """Replace the whole ledger (journaled as one ``write``)."""
        df = checked_ledger(df)
        journal.append(self.journal_path, "write", df.to_dict(orient="records"))
        self._write_parquet(df)

    def _write_parquet(self, df: pd.DataFrame) -> None:
        atomic_write(self.ledger_path, lambda tmp: df.to_parquet(tmp, index=False), label="ledger")

    def upsert(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Insert rows, or update the given fields of rows with the same ``case_id`` (journaled first)."""
        df = checked_ledger(apply_upsert(self.read_ledger(), rows))
        journal.append(self.journal_path, "upsert", rows)
        self._write_parquet(df)
        return self.read_ledger()

    def restore_ledger(self, df: pd.DataFrame) -> None:
        """Write a ledger rebuilt from the journal (not journaled again: the journal holds it)."""
        self._write_parquet(checked_ledger(df))

    def rebuild_ledger(self) -> pd.DataFrame:
        """The ledger as its journal says it is (ValueError when there is no journal)."""
        if not self.journal_path.is_file():
            raise ValueError(f"{self.journal_path}: no journal to rebuild the ledger from")
        df = empty_ledger()
        for op, rows in journal.changes(self.journal_path):
            df = normalise_ledger(pd.DataFrame(rows)) if op == "write" else apply_upsert(df, rows)
        return checked_ledger(df)

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
            write_checkpoint(tmp, checkpoint)
            digest = file_sha256(tmp)
        faults.point("checkpoint:written", name)
        self.index_checkpoint(name, digest)
        return path

    def load_checkpoint(self, name: str) -> dict[str, Any]:
        """Load a checkpoint (weights only), first checking it against its indexed checksum."""
        path = self.model_path(name)
        entry = self.read_model_index().get(name)
        check_sha256(path, entry["sha256"] if entry else None)
        return read_checkpoint(path, require_model=False)
