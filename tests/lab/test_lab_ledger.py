"""The ledger's views (``ledger.cases``): each status, validation, rounds, parameters and spend."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from closedloop.lab.ledger import empty_ledger, normalise_ledger


@pytest.fixture
def ledger() -> pd.DataFrame:
    rows = [("a", 0, "done", 0.1, 2.0), ("b", 0, "done", None, 1.5), ("c", 0, "failed", None, None),
            ("d", 1, "proposed", None, None), ("e", 1, "done", 0.3, 0.5)]
    return normalise_ledger(pd.DataFrame([
        {"case_id": cid, "round": r, "status": status, "parameters": json.dumps({"x": i, "y": -i}),
         "rel_l2": err, "cpu_seconds": cpu} for i, (cid, r, status, err, cpu) in enumerate(rows)]))


def ids(frame: pd.DataFrame) -> list[str]:
    return frame["case_id"].tolist()


def test_views_by_status_and_validation(ledger):
    assert ids(ledger.cases.done()) == ["a", "b", "e"] and ids(ledger.cases.failed()) == ["c"]
    assert ids(ledger.cases.proposed()) == ["d"]
    assert ids(ledger.cases.validated()) == ["a", "e"] and ids(ledger.cases.unvalidated()) == ["b"]
    assert [ledger.cases.count(s) for s in ("proposed", "done", "failed")] == [1, 3, 1]
    # views chain: round 1's validated cases
    assert ids(ledger.cases.of_round(1).cases.validated()) == ["e"]
    assert ledger.cases.of_round(0).cases.params() == [{"x": 0, "y": 0}, {"x": 1, "y": -1}, {"x": 2, "y": -2}]


def test_spend_counts_what_was_simulated(ledger):
    assert ledger.cases.spend() == pytest.approx(4.0)
    assert empty_ledger().cases.spend() == 0.0 and empty_ledger().cases.params() == []
    assert ids(empty_ledger().cases.validated()) == []


def test_a_wrong_status_or_a_frame_that_is_no_ledger_is_refused(ledger):
    with pytest.raises(ValueError, match="status: 'running' is not one of"):
        ledger.cases.with_status("running")
    with pytest.raises(AttributeError, match="not a ledger \\(no 'status' column\\)"):
        pd.DataFrame({"x": [1]}).cases.done()


def test_pending_cases_are_those_whose_error_is_not_known_yet():
    ledger = normalise_ledger(pd.DataFrame([
        {"case_id": "a", "round": 0, "status": "done", "parameters": "{}", "rel_l2": 0.1},
        {"case_id": "b", "round": 0, "status": "done", "parameters": "{}"},  # arrived, not yet predicted
        {"case_id": "c", "round": 1, "status": "proposed", "parameters": "{}"},
        {"case_id": "d", "round": 1, "status": "failed", "parameters": "{}"}]))
    assert ledger.cases.pending()["case_id"].tolist() == ["b", "c"]  # in ledger order; a failure is no pending point
