"""Target references: a target's case file, in steering/cases/ or the campaign's cases/, is reused and
never simulated again; a new one is simulated once and written."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from closedloop.lab import steering
from closedloop.lab.steering import targets
from closedloop.lab.store import file_sha256


def test_an_existing_case_file_is_reused_own_one_first(tmp_path: Path, tiny_scenario, no_simulation):
    steering_dir = tmp_path / "camp" / "steering"
    name = f"{tiny_scenario.case_id()}.parquet"
    campaign_case = tmp_path / "camp" / "cases" / name
    campaign_case.parent.mkdir(parents=True)
    campaign_case.write_bytes(b"a case of the campaign")
    row = steering.simulate_target(steering_dir, tiny_scenario)
    assert row == {"case_id": tiny_scenario.case_id(), "path": str(campaign_case),
                   "sha256": file_sha256(campaign_case), "reused": True}
    own = steering_dir / "cases" / name
    own.parent.mkdir(parents=True)
    own.write_bytes(b"a target written by an earlier run")
    assert steering.simulate_target(steering_dir, tiny_scenario)["path"] == str(own)


def test_a_new_target_is_simulated_once_and_read_back(tmp_path: Path, tiny_scenario, tiny_result, monkeypatch):
    calls = []
    monkeypatch.setattr(targets, "simulate", lambda scenario, device: calls.append(device) or tiny_result)
    steering_dir = tmp_path / "steering"
    row = steering.simulate_target(steering_dir, tiny_scenario, device="cpu", seed=3)
    assert calls == ["cpu"] and row["reused"] is False
    assert row["path"] == str(steering_dir / "cases" / f"{tiny_scenario.case_id()}.parquet")
    assert row["sha256"] == file_sha256(row["path"])
    target = steering.Target("base", {}, {}, tiny_scenario)
    (plane,) = steering.read_references([target], [row])
    assert torch.equal(plane, tiny_result.plane.to(torch.float64))
    again = steering.simulate_target(steering_dir, tiny_scenario)
    assert calls == ["cpu"] and again["reused"] is True


def test_a_nan_target_is_refused_before_anything_is_written(tmp_path: Path, tiny_scenario, tiny_result, monkeypatch):
    broken = dataclasses.replace(tiny_result, plane=tiny_result.plane.clone())
    broken.plane[-1, 0, 0] = float("nan")
    monkeypatch.setattr(targets, "simulate", lambda scenario, device: broken)
    with pytest.raises(FloatingPointError, match="plane: 1 NaN"):
        steering.simulate_target(tmp_path / "steering", tiny_scenario)
    assert not (tmp_path / "steering" / "cases").exists()
