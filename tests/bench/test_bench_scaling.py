"""The discrete-event model of sync vs async campaigns (bench/async_parts/scaling.py).

Asserted: with constant durations the walls, utilisations and staleness equal a hand calculation
(with and without a proposer queue); async never idles workers more than sync on the same case
durations; a slow trainer saturates and its checkpoints fall behind as workers are added; the fit
of T(n) = a + b·n, the first training's factor and the proposal latency recovers known values from
intervals in the bench's format; the replay is deterministic for a seed.
"""
from __future__ import annotations

import pytest

from async_parts.scaling import TaskDurations, replay, task_durations

CONSTANT = TaskDurations(simulation_seconds=[10.0], proposal_seconds=0.0, training_fixed_s=1.0,
                         training_per_case_s=0.1, first_training_factor=2.0)


def test_constant_durations_match_a_hand_calculation():
    r = replay(CONSTANT, workers=(1, 4), rounds=3)["workers"]
    # sync, 1 worker: 3 × (10 s of simulation) + T₁ = 2 × (1 + 0.1) + T(2) = 1.2 + T(3) = 1.3
    s1, a1 = r["1"]["sync"], r["1"]["async"]
    assert s1["wall_s"] == pytest.approx(30 + 2.2 + 1.2 + 1.3)
    assert s1["worker_utilisation"] == pytest.approx(30 / 34.7)
    assert s1["trainer_utilisation"] == pytest.approx(4.7 / 34.7)
    # async, 1 worker: trainings (at 10, 20, 30 s) overlap the next case; only the last is on the path
    assert a1["wall_s"] == pytest.approx(31.3) and a1["drain_s"] == pytest.approx(1.3)
    assert a1["worker_utilisation"] == pytest.approx(30 / 31.3) and a1["trainings"] == 3
    assert a1["staleness"] == {"mean_cases": 1.0, "max_cases": 1, "mean_fraction": pytest.approx(0.75)}
    # 4 workers: rounds of 4; sync trains on 4, 8, 12 cases, async once more only at the end
    s4, a4 = r["4"]["sync"], r["4"]["async"]
    assert s4["wall_s"] == pytest.approx(30 + 2 * 1.4 + 1.8 + 2.2) and s4["cases"] == a4["cases"] == 12
    assert a4["wall_s"] == pytest.approx(30 + 2.2)
    # the 4 simultaneous ends ask for replacements with 1..4 cases done and no checkpoint yet, then
    # 5..8 done on the checkpoint of 4
    assert a4["staleness"]["mean_cases"] == pytest.approx(2.5) and a4["staleness"]["max_cases"] == 4


def test_the_proposer_is_one_queue():
    """2 workers, 10 s cases, p = 1 s per proposal, free training: sync proposes each batch of 2 in
    2 s before its round; async proposes the initial 2 (2 s), then the replacements one after the
    other (13 s and 14 s): both end at 24 s here."""
    d = TaskDurations([10.0], proposal_seconds=1.0, training_fixed_s=0.0, training_per_case_s=0.0)
    r = replay(d, workers=(2,), rounds=2)["workers"]["2"]
    assert r["sync"]["wall_s"] == pytest.approx(24.0) and r["async"]["wall_s"] == pytest.approx(24.0)
    assert r["sync"]["proposer_utilisation"] == pytest.approx(4 / 24)
    assert r["async"]["worker_utilisation"] == pytest.approx(40 / 48)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("per_case", [0.0, 0.05, 2.0])
def test_async_never_idles_workers_more_than_sync(seed, per_case):
    d = TaskDurations([3.0, 5.0, 8.0, 13.0, 40.0], proposal_seconds=0.2, training_fixed_s=5.0,
                      training_per_case_s=per_case, first_training_factor=2.0)
    for n, r in replay(d, workers=(1, 8, 32), rounds=3, seed=seed)["workers"].items():
        assert r["async"]["worker_utilisation"] >= r["sync"]["worker_utilisation"] - 1e-12, (n, r)
        assert r["async"]["wall_s"] <= r["sync"]["wall_s"] + 1e-9, (n, r)


def test_a_slow_single_trainer_becomes_the_bottleneck():
    """Training 0.5 s per case against 10 s cases: at 8 workers it keeps up, at 128 it trains all
    the time and its checkpoints lag hundreds of cases behind."""
    d = TaskDurations([10.0], proposal_seconds=0.0, training_fixed_s=2.0, training_per_case_s=0.5)
    r = replay(d, workers=(8, 128), rounds=4)["workers"]
    few, many = r["8"]["async"], r["128"]["async"]
    assert not few["trainer_bound"] and many["trainer_bound"] and many["trainer_utilisation"] > 0.9
    assert many["staleness"]["mean_cases"] > 10 * few["staleness"]["mean_cases"]
    assert many["drain_s"] > 10 * 10.0  # the final training dominates the wall
    assert r["128"]["async"]["wall_s"] <= r["128"]["sync"]["wall_s"]


def _bench_intervals() -> dict:
    """Intervals in bench/async_campaign.py's format: 1 worker, trainings T(n) = 2 + 0.5 n, the
    first 3 × that; async replacements start 0.4 s after a case's end."""
    sims, trains, t = [], [], 0.0
    for n in range(1, 5):  # async: a case, then a training on the n done
        sims.append({"start": t, "end": t + 6.0, "worker": "sim-0"})
        trains.append({"start": t + 6.0, "end": t + 6.0 + (2 + 0.5 * n) * (3 if n == 1 else 1), "worker": "trainer"})
        t += 6.4
    sync_sims = [{"start": 10.0 * k, "end": 10.0 * k + 8.0, "worker": "sim-0"} for k in range(4)]
    sync_trains = [{"start": 100.0 + 50 * k, "end": 100.0 + 50 * k + (2 + 0.5 * (2 * k + 2)) * (3 if k == 0 else 1)}
                   for k in range(2)]
    for k, tr in enumerate(sync_trains):  # 2 and 4 cases done before the sync trainings
        for s in sync_sims[2 * k:2 * k + 2]:
            s["start"], s["end"] = tr["start"] - 9.0, tr["start"] - 1.0
    return {"async": {"simulations": sims, "trainings": trains, "wall_s": t},
            "sync": {"simulations": sync_sims, "trainings": sync_trains, "wall_s": 250.0}}


def test_durations_are_fitted_from_the_bench_s_intervals():
    d = task_durations(_bench_intervals())
    assert d.training_fixed_s == pytest.approx(2.0) and d.training_per_case_s == pytest.approx(0.5)
    assert d.first_training_factor == pytest.approx(3.0)
    assert d.proposal_seconds == pytest.approx(0.4)
    assert sorted(set(d.simulation_seconds)) == [6.0, 8.0] and len(d.simulation_seconds) == 8
    with pytest.raises(ValueError, match="^durations: no simulation intervals"):
        task_durations({"sync": {"simulations": [], "trainings": []}})


def test_replay_is_deterministic_for_a_seed():
    d = TaskDurations([1.0, 2.0, 9.0], proposal_seconds=0.1, training_fixed_s=1.0, training_per_case_s=0.01)
    assert replay(d, seed=3) == replay(d, seed=3)
    assert replay(d, seed=3)["workers"]["32"] != replay(d, seed=4)["workers"]["32"]
    assert replay(_bench_intervals(), workers=(8,))["workers"]["8"]["async"]["cases"] == 32
