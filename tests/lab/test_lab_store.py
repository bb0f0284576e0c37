"""The campaign store: case files, the ledger and checkpoints, all written atomically."""
from __future__ import annotations

import json
import pickle

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from closedloop.lab.store import STATUSES, Case, CampaignStore, read_case
from tests.lab.case_files import tmp_files


@pytest.fixture()
def store(tmp_path):
    return CampaignStore(tmp_path / "campaign")


# ------------------------------------------------------------------------------------- cases


def test_store_write_case_names_file_by_case_id_and_has_case(store, case):
    assert not store.has_case(case.case_id)
    path = store.write_case(case)
    assert path == store.cases_dir / f"{case.case_id}.parquet"
    assert store.has_case(case.case_id)
    assert torch.equal(store.read_case(case.case_id).plane, case.plane.to(torch.float64))
    assert tmp_files(store.cases_dir) == []


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_has_case_false_for_damaged_file(store, case, damage):
    path = store.write_case(case)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"",
                      "garbage": b"not parquet at all" * 10}[damage])
    assert not store.has_case(case.case_id)
    with pytest.raises(ValueError, match=str(path.name)):
        read_case(path)


def test_has_case_false_for_parquet_that_is_not_a_case(store, tmp_path):
    pd.DataFrame({"a": [1, 2]}).to_parquet(store.case_path("0123456789abcdef"))
    assert not store.has_case("0123456789abcdef")


def test_failed_case_write_keeps_previous_file_and_leaves_no_temp(store, case, monkeypatch):
    path = store.write_case(case)
    before = path.read_bytes()

    written = []

    def half_write(table, where, *args, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1" + b"\0" * 100)  # half a file
        written.append(str(where))
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pq, "write_table", half_write)
    changed = Case(scenario=case.scenario, times=case.times, plane=case.plane + 1.0,
                   plane_mask=case.plane_mask, probes=case.probes, budget=case.budget,
                   provenance=case.provenance, grid=case.grid)
    with pytest.raises(OSError, match="disk full"):
        store.write_case(changed)

    assert written and written[0] != str(path)  # it wrote to a temporary sibling, not the target
    assert path.read_bytes() == before
    assert tmp_files(store.cases_dir) == []
    assert store.has_case(case.case_id)
    monkeypatch.undo()
    assert torch.equal(store.read_case(case.case_id).plane, case.plane.to(torch.float64))


def test_failed_first_case_write_leaves_nothing(store, case, monkeypatch):
    def boom(table, where, *args, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1")
        raise RuntimeError("killed")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(RuntimeError):
        store.write_case(case)
    assert not store.has_case(case.case_id)
    assert list(store.cases_dir.iterdir()) == []


# ------------------------------------------------------------------------------------ ledger
def proposed(case_id, round_=0, **extra):
    return {"case_id": case_id, "round": round_, "status": "proposed", "strategy": "sobol",
            "parameters": json.dumps({"source_x": 2.0}), **extra}


def test_empty_ledger_has_all_columns(store):
    df = store.read_ledger()
    assert len(df) == 0
    for col in ("case_id", "round", "status", "parameters", "rel_l2", "flow_run_id"):
        assert col in df.columns
    assert not store.ledger_path.exists()


def test_ledger_upsert_insert_then_update_round_trip(store):
    df = store.upsert([proposed("a"), proposed("b", flow_run_id="run-1")])
    assert df["case_id"].tolist() == ["a", "b"]
    assert (df["status"] == "proposed").all()

    df = store.upsert([{"case_id": "a", "status": "done", "rel_l2": 0.25, "sim_seconds": 1.5},
                       proposed("c", round_=1)])
    assert df["case_id"].tolist() == ["a", "b", "c"]
    a = df.set_index("case_id").loc["a"]
    assert a["status"] == "done" and a["rel_l2"] == 0.25 and a["sim_seconds"] == 1.5
    assert a["strategy"] == "sobol" and a["round"] == 0  # untouched fields kept
    assert json.loads(a["parameters"]) == {"source_x": 2.0}

    # read back through a fresh store object: what is on disk is the same
    again = CampaignStore(store.root).read_ledger()
    pd.testing.assert_frame_equal(again, df)
    assert str(again["round"].dtype) == "int64"
    assert again.set_index("case_id").loc["b", "flow_run_id"] == "run-1"
    assert pd.isna(again.set_index("case_id").loc["b", "rel_l2"])
    assert tmp_files(store.root) == []


def test_ledger_rejects_duplicate_case_ids(store):
    store.upsert([proposed("a")])
    before = store.ledger_path.read_bytes()
    dup = pd.DataFrame([proposed("x"), proposed("x")])
    with pytest.raises(ValueError, match="case_id") as info:
        store.write_ledger(dup)
    assert "'x'" in str(info.value)
    assert store.ledger_path.read_bytes() == before


def test_ledger_rejects_unknown_status(store):
    store.upsert([proposed("a")])
    before = store.ledger_path.read_bytes()
    with pytest.raises(ValueError, match=r"status") as info:
        store.upsert([{"case_id": "a", "status": "exploded"}])
    assert "exploded" in str(info.value)
    assert store.ledger_path.read_bytes() == before
    assert store.read_ledger()["status"].tolist() == ["proposed"]
    assert "done" in STATUSES


def test_ledger_row_without_case_id_rejected(store):
    with pytest.raises(ValueError, match="case_id"):
        store.upsert([{"status": "done"}])
    assert not store.ledger_path.exists()


def test_failed_ledger_write_keeps_previous_ledger(store, monkeypatch):
    store.upsert([proposed("a"), proposed("b")])
    before = store.ledger_path.read_bytes()

    def half_write(self, where, *args, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a ledger")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_write)
    with pytest.raises(OSError, match="disk full"):
        store.upsert([{"case_id": "a", "status": "done"}, proposed("c")])
    monkeypatch.undo()

    assert store.ledger_path.read_bytes() == before
    assert tmp_files(store.root) == []
    df = store.read_ledger()
    assert df["case_id"].tolist() == ["a", "b"]
    assert df["status"].tolist() == ["proposed", "proposed"]


# ------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_weights_only(store):
    ck = {"spec": {"shape": [3, 4], "spacing": [0.5, 0.5], "use_closure": True},
          "state_dict": {"w": torch.randn(3, 4, dtype=torch.float64), "mask": torch.ones(3, 4)},
          "losses": [0.5, 0.25], "round": 2, "created": "now"}
    path = store.save_checkpoint("round_002", ck)
    assert path == store.models_dir / "round_002.pt"
    back = store.load_checkpoint("round_002")
    assert back["spec"] == ck["spec"] and back["losses"] == ck["losses"] and back["round"] == 2
    assert torch.equal(back["state_dict"]["w"], ck["state_dict"]["w"])
    assert back["state_dict"]["w"].dtype == torch.float64
    assert tmp_files(store.models_dir) == []


class _Arbitrary:  # an object that a weights-only load must refuse
    def __init__(self):
        self.x = 1


def test_checkpoint_load_is_weights_only(store):
    store.save_checkpoint("evil", {"obj": _Arbitrary()})
    with pytest.raises(pickle.UnpicklingError):
        store.load_checkpoint("evil")


def test_failed_checkpoint_write_keeps_previous(store, monkeypatch):
    store.save_checkpoint("m", {"w": torch.arange(3.0)})
    before = store.model_path("m").read_bytes()

    def half_save(obj, where, *args, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PK\x03\x04 half")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(OSError):
        store.save_checkpoint("m", {"w": torch.arange(5.0)})
    monkeypatch.undo()
    assert store.model_path("m").read_bytes() == before
    assert torch.equal(store.load_checkpoint("m")["w"], torch.arange(3.0))
    assert tmp_files(store.models_dir) == []


def test_store_creates_layout(tmp_path):
    root = tmp_path / "deep" / "camp"
    s = CampaignStore(root)
    assert s.cases_dir.is_dir() and s.models_dir.is_dir() and s.figures_dir.is_dir()
    assert s.ledger_path == root / "ledger.parquet"
