"""A case on disk: one parquet file that reads back exactly, opens with pandas, and names itself in errors."""
from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from closedloop.lab.cases import read_case, write_case
from closedloop.lab.store import file_sha256


def test_case_round_trip_is_exact(tmp_path, case):
    path = tmp_path / "one.parquet"
    write_case(path, case)
    back = read_case(path)

    assert back.case_id == case.case_id
    assert back.scenario == case.scenario
    assert torch.equal(back.times, case.times.to(torch.float64))
    assert back.plane.dtype == torch.float64
    assert back.plane.shape == case.plane.shape
    assert torch.equal(back.plane, case.plane.to(torch.float64))
    assert torch.equal(back.plane_mask, case.plane_mask)
    assert back.plane_mask.dtype == torch.bool
    assert set(back.probes) == set(case.probes) == {"desk", "exhaust"}
    for name in case.probes:
        assert torch.equal(back.probes[name], case.probes[name].to(torch.float64))
    assert set(back.budget) == set(case.budget)
    for name in case.budget:
        assert torch.equal(back.budget[name], case.budget[name].to(torch.float64))
    assert back.provenance == case.provenance
    assert back.provenance["seed"] == 11 and back.provenance["config_hash"] == "abc123"
    assert back.grid == case.grid


def test_case_file_opens_with_pandas_one_row_per_output_time(tmp_path, case):
    path = tmp_path / "one.parquet"
    write_case(path, case)
    df = pd.read_parquet(path)
    assert len(df) == len(case.times) == case.scenario.time.n_outputs + 1
    assert "plane" in df.columns and "time" in df.columns
    assert df["time"].tolist() == case.times.tolist()
    nx, ny = case.plane.shape[1:]
    row = torch.as_tensor(df["plane"].iloc[2].tolist(), dtype=torch.float64).reshape(nx, ny)
    assert torch.equal(row, case.plane[2].to(torch.float64))
    meta = json.loads(pq.read_schema(path).metadata[b"closedloop"])
    assert meta["case_id"] == case.case_id
    assert meta["provenance"]["device"] == "cpu"


def test_read_case_on_non_case_parquet_names_path(tmp_path):
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(path)
    with pytest.raises(ValueError) as info:
        read_case(path)
    assert str(path) in str(info.value)
    assert "not a case file" in str(info.value)


def test_read_case_on_missing_file_names_path(tmp_path):
    path = tmp_path / "missing.parquet"
    with pytest.raises(ValueError, match="missing.parquet"):
        read_case(path)


def test_write_case_returns_the_checksum_of_the_file(store_with_case):
    store, cid, sha = store_with_case
    assert file_sha256(store.case_path(cid)) == sha
    assert store.read_case(cid, sha256=sha).case_id == cid
