"""The ledger's journal: every change to the ledger, appended as one JSON line before the ledger is
rewritten, so that a truncated, corrupted or deleted ``ledger.parquet`` can be rebuilt exactly.

    {"op": "upsert", "at": "…", "rows": [{"case_id": …, …}, …]}   rows inserted or updated
    {"op": "write",  "at": "…", "rows": [every row]}                 the whole ledger replaced

Each line is written with one ``write`` and fsynced. A line torn by a kill while it was appended is
the last one and is skipped on replay (its change was not in the ledger either: the ledger is
rewritten after the journal). Replaying a change twice (a resumed run repeats it) changes nothing,
since an upsert of the same values is idempotent.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    """JSON for what a ledger row holds: numpy scalars as Python numbers, pandas' NA as null."""
    if hasattr(value, "item"):
        return value.item()
    return None


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def append(path: Path, op: str, rows: list[dict[str, Any]]) -> None:
    """Append one change (``upsert`` or ``write``) durably."""
    at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    line = json.dumps({"op": op, "at": at, "rows": [_clean(r) for r in rows]}, default=_plain) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def changes(path: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """The journal's changes in order; a torn last line is left out, a torn earlier one is an error."""
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        try:
            entry = json.loads(line)
            out.append((entry["op"], entry["rows"]))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is damaged ({err}); the journal cannot be replayed past it") from err
    return out
