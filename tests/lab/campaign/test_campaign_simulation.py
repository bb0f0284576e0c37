"""The simulate step: a case is simulated once and reused after; a non-finite result is never written;
a failed case's ledger row names the error and the attempts; the cache key is the case id and device."""
from __future__ import annotations

import dataclasses
import math

import pytest

from closedloop.simulators import interface
from closedloop.lab import campaign as steps
from closedloop.lab.campaign import simulation
from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import CampaignStore, file_sha256
from tests.lab.conftest import SMOKE_TOML

POINT = {"source_x": 2.0, "source_y": 1.0, "inlet_speed": 0.5}


@pytest.fixture(scope="module")
def config():
    return load_campaign_config(SMOKE_TOML)


def test_a_case_is_simulated_once_then_reused(config, tmp_path, tiny_result, monkeypatch):
    calls = []
    monkeypatch.setattr(interface, "reference_simulate", lambda scenario, **kw: calls.append(scenario.case_id()) or tiny_result)
    store = CampaignStore(tmp_path / "camp")
    first = steps.run_case(config, store, POINT)
    case_id = steps.scenario_for(config, POINT).case_id()
    assert calls == [case_id] and (first["case_id"], first["status"], first["reused"]) == (case_id, "done", False)
    assert first["case_sha256"] == file_sha256(store.case_path(case_id))
    again = steps.run_case(config, store, POINT)
    assert calls == [case_id] and again["reused"] is True
    assert (again["case_sha256"], again["sim_seconds"]) == (first["case_sha256"], first["sim_seconds"])


def test_a_non_finite_result_is_refused_naming_each_series(tiny_result):
    broken = dataclasses.replace(tiny_result, plane=tiny_result.plane.clone(),
                                 mass_emitted=tiny_result.mass_emitted.clone())
    broken.plane[1, 2, 2], broken.plane[2, 2, 2], broken.mass_emitted[0] = math.nan, math.inf, math.nan
    with pytest.raises(FloatingPointError, match=r"^case abc: .*\(plane: 1 NaN, 1 inf of \d+; mass_emitted: 1 NaN, "
                                                 r"0 inf of \d+\); nothing was written"):
        steps.check_finite("abc", broken)
    steps.check_finite("abc", tiny_result)


def test_a_failed_case_row_names_the_error_and_the_attempts(config):
    row = steps.failed_row(config, POINT, RuntimeError("solver diverged"), "run-1")
    assert (row["case_id"], row["status"], row["flow_run_id"]) == (steps.scenario_for(config, POINT).case_id(),
                                                                   "failed", "run-1")
    assert row["error"] == "RuntimeError: solver diverged (failed 3 attempts)"  # retries = 2
    once = config.with_overrides(**{"simulation.retries": 0, "simulation.timeout_seconds": 5.0})
    assert steps.failed_row(once, POINT, TimeoutError(), None)["error"] == (
        "TimeoutError: longer than simulation.timeout_seconds = 5.0 s (failed 1 attempt)")


def test_the_cache_key_is_the_case_id_and_the_device(config):
    case_id = steps.scenario_for(config, POINT).case_id()
    assert steps.simulation_cache_key(config, POINT) == f"simulate-{case_id}-cpu"
    gpu = config.with_overrides(**{"simulation.device": "cuda:1"})
    assert steps.simulation_cache_key(gpu, POINT) == f"simulate-{case_id}-cuda-1"
