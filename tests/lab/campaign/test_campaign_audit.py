"""The audit before a resume: temporary files removed, damaged files set aside, whole ones adopted."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import load_campaign_config
from tests.lab.conftest import SMOKE_TOML


@pytest.fixture
def config():
    return load_campaign_config(SMOKE_TOML).with_overrides(**{"surrogate.epochs": 1, "surrogate.hidden_channels": 2})


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
