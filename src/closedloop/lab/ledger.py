"""The ledger: one row per case (its columns, :data:`LEDGER_COLUMNS`), and the views the lab reads.

A case is ``proposed`` when the planner wrote it (before anything runs), then ``done`` (its case file
written) or ``failed`` (every attempt); a done case is *validated* once the model of its round has
predicted it (``rel_l2``, ``log_rel_l2``, ``validated_by``). The views are pandas' accessor
``ledger.cases`` on any normalised ledger DataFrame (lab/store.py reads and writes it)::

    ledger.cases.done()              # done rows              ledger.cases.validated()   # done, predicted
    ledger.cases.proposed()          # in flight or waiting   ledger.cases.unvalidated() # done, not predicted
    ledger.cases.of_round(r)         # one round's rows       ledger.cases.params()      # [{name: value}]
    ledger.cases.count("failed")     # rows with a status     ledger.cases.spend()       # CPU-seconds
    ledger.cases.pending()           # error not known yet: proposed, or done and not yet predicted

Each view returns a DataFrame of the same columns (so they chain: ``ledger.cases.of_round(r).cases.validated()``).
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

LEDGER_COLUMNS: dict[str, str] = {
    "case_id": "string", "round": "int64", "status": "string", "strategy": "string",
    "parameters": "string", "proposed_at": "string", "finished_at": "string",
    "sim_seconds": "float64", "rel_l2": "float64", "log_rel_l2": "float64",
    "validated_by": "string", "flow_run_id": "string", "error": "string", "case_sha256": "string",
    "simulator": "string", "cpu_seconds": "float64", "fidelity": "string",
}
STATUSES = ("proposed", "done", "failed")


def empty_ledger() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in LEDGER_COLUMNS.items()})


def normalise_ledger(df: pd.DataFrame) -> pd.DataFrame:
    """Every column of :data:`LEDGER_COLUMNS`, in order and of its dtype (others kept after them)."""
    for col, dtype in LEDGER_COLUMNS.items():
        if col not in df.columns:
            df[col] = pd.Series([None] * len(df), dtype=dtype)
    df = df[list(LEDGER_COLUMNS) + [c for c in df.columns if c not in LEDGER_COLUMNS]]
    return df.astype({c: t for c, t in LEDGER_COLUMNS.items()}).reset_index(drop=True)


@pd.api.extensions.register_dataframe_accessor("cases")
class LedgerCases:
    """``ledger.cases``: the ledger's rows by status, round and validation, and their parameters."""

    def __init__(self, frame: pd.DataFrame):
        if "status" not in frame.columns:
            raise AttributeError("ledger.cases: not a ledger (no 'status' column)")
        self._frame = frame

    def with_status(self, status: str) -> pd.DataFrame:
        if status not in STATUSES:
            raise ValueError(f"status: {status!r} is not one of {STATUSES}")
        return self._frame[self._frame["status"] == status]

    def done(self) -> pd.DataFrame:
        return self.with_status("done")

    def proposed(self) -> pd.DataFrame:
        """Cases proposed and not yet finished: running, waiting, or in flight when a run died."""
        return self.with_status("proposed")

    def failed(self) -> pd.DataFrame:
        return self.with_status("failed")

    def validated(self) -> pd.DataFrame:
        """Done cases the model has predicted (their validation error is recorded)."""
        f = self._frame
        return f[(f["status"] == "done") & f["rel_l2"].notna()]

    def unvalidated(self) -> pd.DataFrame:
        """Done cases without a validation error (a run stopped between recording and validating)."""
        f = self._frame
        return f[(f["status"] == "done") & f["rel_l2"].isna()]

    def pending(self) -> pd.DataFrame:
        """Cases whose validation error is not known yet: proposed (running or waiting), or done and
        not yet predicted; what a proposal treats as pending (BoTorch's ``X_pending``)."""
        f = self._frame
        return f[(f["status"] == "proposed") | ((f["status"] == "done") & f["rel_l2"].isna())]

    def of_round(self, round_index: int) -> pd.DataFrame:
        return self._frame[self._frame["round"] == round_index]

    def count(self, status: str) -> int:
        return len(self.with_status(status))

    def params(self) -> list[dict[str, Any]]:
        """Each row's parameters (the design point, and its level in a multi-fidelity campaign)."""
        return [json.loads(p) for p in self._frame["parameters"]]

    def spend(self) -> float:
        """CPU-seconds of every case simulated (a failed or proposed case records none)."""
        if "cpu_seconds" not in self._frame or not len(self._frame):
            return 0.0
        return float(self._frame["cpu_seconds"].fillna(0.0).sum())
