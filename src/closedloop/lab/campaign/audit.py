"""The audit step: before a campaign resumes, check what is on disk against recorded checksums.

Temporary files left by a killed writer are removed; a damaged checkpoint is set aside and its
round trained again; a damaged case is set aside and simulated again (by its round, or, when that
round is complete, by the flow's repair step: :attr:`AuditReport.resimulate`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from closedloop.lab.campaign.simulation import simulation_cache_key
from closedloop.lab.campaign.state import round_complete
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore, IntegrityError, check_sha256, file_sha256, now_iso, read_case
from closedloop.surrogates.checkpoint import NotACheckpoint, read_checkpoint


@dataclass
class AuditReport:
    """What :func:`audit` found before a campaign resumed."""

    temp_files: list[str] = field(default_factory=list)  # left by a killed writer, removed
    damaged: list[str] = field(default_factory=list)  # one line per file set aside
    notes: list[str] = field(default_factory=list)  # harmless findings (e.g. checksums recorded late)
    resimulate: list[dict[str, float]] = field(default_factory=list)  # cases of complete rounds to run again


def checksum_problem(path: Path, sha256: str) -> str | None:
    """Why ``path`` does not match its recorded checksum, or None."""
    try:
        check_sha256(path, sha256)
    except IntegrityError as err:
        return str(err).removeprefix(f"{path}: ")
    return None


def checkpoint_problem(store: CampaignStore, name: str, sha256: str | None) -> str | None:
    """Why a checkpoint cannot be used, or None."""
    path = store.model_path(name)
    if not path.exists():
        return "file is missing"
    if sha256:
        return checksum_problem(path, sha256)
    try:  # no checksum recorded: the file must at least load as a checkpoint
        read_checkpoint(path)
    except NotACheckpoint:
        return "not a closedloop checkpoint (no spec/state_dict)"
    except Exception as err:  # noqa: BLE001 - any unreadable file is damaged
        return f"unreadable ({type(err).__name__}: {str(err).strip().splitlines()[0][:160] if str(err).strip() else ''})"
    return None


def case_problem(store: CampaignStore, case_id: str, sha256: str | None) -> str | None:
    """Why an existing case file cannot be used, or None."""
    path = store.case_path(case_id)
    if sha256:
        return checksum_problem(path, sha256)
    try:  # written but not yet recorded (the run stopped before the ledger knew): it must read back
        case = read_case(path)
        if not torch.isfinite(case.plane).all():
            return "holds non-finite values"
    except (ValueError, OSError, KeyError) as err:
        return str(err).removeprefix(f"{path}: ")
    return None


def audit(config: CampaignConfig, store: CampaignStore) -> AuditReport:
    """Check a campaign directory before resuming it (call under the campaign lock).

    Removes temporary files left by a killed writer; checks every checkpoint against
    ``models/index.json`` and every case file against the ledger's sha256 (or, where none is
    recorded yet, that it reads back). Damaged files are moved to ``quarantine/`` and the damage is
    written to the ledger's ``error`` column; a damaged checkpoint makes its round incomplete (it is
    trained again, from the same start), a damaged case goes back to ``proposed`` (and its cached
    task result is dropped) so it is simulated again: by its round, or, when that round is complete,
    by the flow's repair step (``resimulate``).
    """
    report = AuditReport(temp_files=[str(p) for p in store.remove_temp_files()])
    try:
        index = store.read_model_index()
    except IntegrityError as err:
        report.damaged.append(f"{err}; set aside as {store.quarantine(store.model_index_path)}")
        index = {}
    for name in sorted(set(index) | {p.stem for p in store.models_dir.glob("round_*.pt")}):
        entry = index.get(name)
        problem = checkpoint_problem(store, name, entry["sha256"] if entry else None)
        path = store.model_path(name)
        if problem is None and entry is None:
            store.index_checkpoint(name, file_sha256(path))
            report.notes.append(f"{path}: complete but not yet indexed (the run stopped in between); indexed")
        elif problem is not None:
            where = f"; set aside as {store.quarantine(path)}" if path.exists() else ""
            store.index_checkpoint(name, None)
            report.damaged.append(f"{path}: {problem}{where}; the round will be trained again")

    ledger = store.read_ledger()
    updates = []
    for _, row in ledger.iterrows():
        cid, status = row["case_id"], row["status"]
        path = store.case_path(cid)
        sha = None if pd.isna(row["case_sha256"]) else str(row["case_sha256"])
        if status == "failed" or (status == "proposed" and not path.exists()):
            continue
        problem = "file is missing" if not path.exists() else case_problem(store, cid, sha)
        if problem is None:
            if status == "done" and sha is None:  # a ledger from before checksums: record it now
                updates.append({"case_id": cid, "case_sha256": file_sha256(path)})
            continue
        where = f"; set aside as {store.quarantine(path)}" if path.exists() else ""
        params = json.loads(row["parameters"])
        (store.cache_dir / simulation_cache_key(config, params)).unlink(missing_ok=True)
        message = f"{path}: {problem}{where}; simulated again"
        report.damaged.append(message)
        updates.append({"case_id": cid, "status": "proposed", "case_sha256": None,
                        "error": f"{now_iso()} {message}"[:2000]})
    if updates:
        ledger = store.upsert(updates)
    complete = {r for r in ledger["round"].unique() if round_complete(store, int(r))}
    stranded = ledger.cases.proposed()
    stranded = stranded[stranded["round"].isin(complete)]
    report.resimulate = stranded.cases.params()
    return report


def repair_ledger(store: CampaignStore) -> str:
    """Rebuild ``ledger.parquet`` from its journal when it is missing, unreadable or differs; the
    damaged file is set aside in ``quarantine/``. Returns what was done, in one line."""
    rebuilt = store.rebuild_ledger()
    problem = "missing"
    if store.ledger_path.exists():
        try:
            pd.testing.assert_frame_equal(store.read_ledger(), rebuilt)
            return f"{store.ledger_path}: intact ({len(rebuilt)} cases, as its journal says)"
        except IntegrityError as err:
            problem = str(err).removeprefix(f"{store.ledger_path}: ").split(";")[0]
        except AssertionError:
            problem = "differs from its journal"
        where = store.quarantine(store.ledger_path)
        problem += f"; set aside as {where}"
    store.restore_ledger(rebuilt)
    return f"{store.ledger_path}: {problem}; rebuilt from {store.journal_path.name} ({len(rebuilt)} cases)"
