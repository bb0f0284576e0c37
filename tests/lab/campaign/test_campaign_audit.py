"""Checksums of cases and checkpoints: damage is found, named, set aside, and never trained on."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import CampaignStore, IntegrityError, file_sha256, write_case
from tests.lab.conftest import SMOKE_TOML
from tests.lab.test_lab_store import make_case


def flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def config():
    return load_campaign_config(SMOKE_TOML).with_overrides(**{"surrogate.epochs": 1, "surrogate.hidden_channels": 2})


@pytest.fixture
def store_with_case(tmp_path, tiny_scenario, tiny_result):
    store = CampaignStore(tmp_path / "camp")
    case = make_case(tiny_scenario, tiny_result)
    sha = write_case(store.case_path(case.case_id), case)
    store.upsert([{"case_id": case.case_id, "round": 0, "status": "done", "strategy": "sobol",
                   "parameters": "{}", "case_sha256": sha}])
    return store, case.case_id, sha


def test_write_case_returns_the_checksum_of_the_file(store_with_case):
    store, cid, sha = store_with_case
    assert file_sha256(store.case_path(cid)) == sha
    assert store.read_case(cid, sha256=sha).case_id == cid


def test_damaged_case_is_refused_by_validation_and_training(config, store_with_case):
    store, cid, sha = store_with_case
    flip_byte(store.case_path(cid))
    with pytest.raises(IntegrityError, match=rf"{cid}.parquet: checksum mismatch: recorded sha256 {sha[:16]}"):
        steps.validate_round(config, store, 0, [cid])
    with pytest.raises(IntegrityError, match="damaged after it was written"):
        steps.retrain_round(config, store, 0, [cid])
    assert list(store.models_dir.iterdir()) == []  # nothing was trained on it


def test_checkpoint_checksum_is_indexed_and_checked(store_with_case, config):
    store, cid, _ = store_with_case
    steps.retrain_round(config, store, 0, [cid])
    name = steps.model_name(0)
    index = json.loads(store.model_index_path.read_text())
    assert index[name]["sha256"] == file_sha256(store.model_path(name)) and steps.round_complete(store, 0)
    flip_byte(store.model_path(name), offset=store.model_path(name).stat().st_size - 40)
    with pytest.raises(IntegrityError, match=r"round_000.pt: checksum mismatch"):
        store.load_checkpoint(name)


def test_audit_sets_damage_aside_and_adopts_what_is_whole(config, store_with_case):
    store, cid, sha = store_with_case
    steps.retrain_round(config, store, 0, [cid])
    good = store.read_model_index()["round_000"]["sha256"]
    # a checkpoint renamed into place before its checksum was indexed (the run died in between) ...
    torch.save(torch.load(store.model_path("round_000"), weights_only=True), store.model_path("round_001"))
    # ... a damaged one, a leftover temporary, and a truncated case
    store.model_path("round_002").write_bytes(b"PK\x03\x04 not a checkpoint")
    (store.root / ".ledger.parquet.abc.tmp").write_bytes(b"half")
    path = store.case_path(cid)
    path.write_bytes(path.read_bytes()[:100])

    report = steps.audit(config, store)

    assert report.temp_files == [str(store.root / ".ledger.parquet.abc.tmp")]
    assert not (store.root / ".ledger.parquet.abc.tmp").exists()
    index = store.read_model_index()
    assert index["round_000"]["sha256"] == good and "round_001" in index and "round_002" not in index
    assert any("round_001.pt: complete but not yet indexed" in n for n in report.notes)
    assert not store.model_path("round_002").exists() and not path.exists()
    assert len(report.damaged) == 2 and len(list(store.quarantine_dir.iterdir())) == 2
    assert any("round_002.pt: unreadable" in d for d in report.damaged)
    case_line = next(d for d in report.damaged if cid in d)
    assert "checksum mismatch" in case_line and "quarantine" in case_line
    row = store.read_ledger().set_index("case_id").loc[cid]
    assert row["status"] == "proposed" and "checksum mismatch" in row["error"]
    assert pd.isna(row["case_sha256"])
    assert report.resimulate == [{}]  # round 0 is complete: the flow's repair step simulates it again
    assert steps.audit(config, store).damaged == []  # a second look finds nothing new
