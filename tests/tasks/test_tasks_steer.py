"""Tasks of the steer flow: a target reference is cached by its scenario's case id and the device."""
from __future__ import annotations

from closedloop.simulators import load_scenario
from closedloop.tasks.steer import target_cache_key
from tests.conftest import ROOM


def test_a_target_is_cached_by_its_case_id_and_device():
    scenario = load_scenario(ROOM)
    moved = scenario.with_parameters({"source.x": 7.0})
    key = target_cache_key(None, {"steering_dir": "anywhere", "scenario": scenario, "device": "cuda:0", "seed": 3})
    assert key == f"steer-target-{scenario.case_id()}-cuda-0"
    assert target_cache_key(None, {"steering_dir": "elsewhere", "scenario": scenario, "device": "cuda:0",
                                   "seed": 4}) == key  # neither where it is written nor the seed changes it
    assert target_cache_key(None, {"steering_dir": "anywhere", "scenario": moved, "device": "cuda:0",
                                   "seed": 3}) != key
