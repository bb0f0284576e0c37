"""Where the time goes (lab/campaign/clock.py): wall seconds by round and step, overlap counted once."""
from __future__ import annotations

import pytest

from closedloop.lab import timing
from closedloop.lab.campaign.clock import StepClock, add_seconds, totals, union_seconds


def test_union_counts_overlap_once():
    assert union_seconds([]) == 0.0
    assert union_seconds([(0, 2), (1, 3), (5, 6)]) == pytest.approx(4.0)
    assert union_seconds([(0, 10), (2, 3), (4, 5)]) == pytest.approx(10.0)  # nested intervals add nothing
    assert union_seconds([(3, 4), (0, 1)]) == pytest.approx(2.0)


def test_rounds_steps_and_orchestration():
    clock = StepClock()
    clock.round_started(0, at=100.0)
    clock("planning", 100.0, 101.0)
    clock("simulation", 101.0, 104.0)  # two simulations side by side: 3 s of wall, not 5
    clock("simulation", 102.0, 104.0)
    clock("training", 105.0, 109.0)
    clock.round_started(1, at=110.0)
    clock("training", 111.0, 112.0)
    clock.stop(at=115.0)
    seconds = clock.seconds()
    assert set(seconds) == {"0", "1"}
    r0 = seconds["0"]
    assert r0["wall"] == pytest.approx(10.0) and r0["simulation"] == pytest.approx(3.0)
    assert r0["planning"] == pytest.approx(1.0) and r0["training"] == pytest.approx(4.0)
    assert r0["validation"] == 0.0 and r0["orchestration"] == pytest.approx(2.0)  # 104–105 and 109–110
    assert seconds["1"]["wall"] == pytest.approx(5.0) and seconds["1"]["orchestration"] == pytest.approx(4.0)
    assert totals(seconds)["training"] == pytest.approx(5.0)


def test_an_interval_across_a_round_boundary_counts_in_each_round_for_its_part():
    clock = StepClock()
    clock.round_started(0, at=0.0)
    clock("simulation", 8.0, 12.0)  # async: a simulation runs on while round 1 opens
    clock.round_started(1, at=10.0)
    clock.stop(at=20.0)
    seconds = clock.seconds()
    assert seconds["0"]["simulation"] == pytest.approx(2.0) and seconds["1"]["simulation"] == pytest.approx(2.0)


def test_a_resumed_campaign_adds_its_seconds_to_the_earlier_runs():
    before = {"0": {"wall": 5.0, "training": 2.0}, "1": {"wall": 1.0, "simulation": 1.0}}
    now = {"1": {"wall": 3.0, "simulation": 2.0, "training": 1.0}, "2": {"wall": 4.0}}
    merged = add_seconds(before, now)
    assert list(merged) == ["0", "1", "2"]
    assert merged["1"] == {"wall": 4.0, "simulation": 3.0, "training": 1.0} and merged["0"] == before["0"]
    assert add_seconds(None, {}) == {}


def test_timed_steps_and_round_marks_reach_the_clock():
    clock = StepClock()
    with timing.listening(clock):
        timing.round_started(3)
        with timing.timed("validation"):
            pass
    clock.stop()
    seconds = clock.seconds()
    assert list(seconds) == ["3"] and seconds["3"]["wall"] >= seconds["3"]["validation"] >= 0.0
    timing.round_started(4)  # no listener: nothing happens
    assert list(clock.seconds()) == ["3"]
