"""lab/timing.py: listeners hear the science steps, nothing is recorded without one."""
from __future__ import annotations

import threading
import time

import pytest

from closedloop.lab import campaign as steps
from closedloop.lab import timing
from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import CampaignStore
from tests.conftest import fast_config_text


def test_a_listener_hears_blocks_and_decorated_calls():
    heard = []

    @timing.timed("planning")
    def plan(x: int) -> int:
        return 2 * x

    with timing.listening(lambda *event: heard.append(event)):
        with timing.timed("training"):
            time.sleep(0.01)
        assert plan(3) == 6
        with pytest.raises(RuntimeError), timing.timed("simulation"):
            raise RuntimeError("a failed step still took its time")
    assert [step for step, _, _ in heard] == ["training", "planning", "simulation"]
    start, end = heard[0][1:]
    assert end - start >= 0.009 and abs(start - time.time()) < 60  # wall-clock seconds
    assert plan.__name__ == "plan"


def test_nothing_is_recorded_without_a_listener(monkeypatch):
    heard = []
    with timing.listening(heard.append):
        pass
    assert timing._listeners == ()  # removed again
    # no clock is read at all: a timed step costs a check of the empty listener tuple
    monkeypatch.setattr(timing.time, "time", lambda: pytest.fail("the clock was read"))
    with timing.timed("training"):
        pass
    assert heard == []
    with pytest.raises(ValueError):
        timing.remove_listener(heard.append)


def test_listeners_hear_every_thread():
    heard, lock = [], threading.Lock()

    def listener(step: str, start: float, end: float) -> None:
        with lock:
            heard.append(step)

    @timing.timed("simulation")
    def simulate_one() -> None:
        time.sleep(0.001)

    with timing.listening(listener):
        threads = [threading.Thread(target=lambda: [simulate_one() for _ in range(20)]) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert heard == ["simulation"] * 160


def test_the_campaign_steps_report_their_science(tmp_path):
    """Planning, simulation (not when a case is reused), validation and training of one round."""
    path = tmp_path / "tiny.toml"
    path.write_text(fast_config_text(initial_cases="2", epochs="1", hidden_channels="2"))
    config = load_campaign_config(path).with_overrides(**{"scenario.time.horizon": 30.0})
    store = CampaignStore(tmp_path / "campaign")
    heard = []
    with timing.listening(lambda step, start, end: heard.append(step)):
        batch, _ = steps.round_proposals(config, store, 0)
        rows = [steps.run_case(config, store, params) for params in batch]
        reused = steps.run_case(config, store, batch[0])
        steps.record_outcomes(store, rows)
        steps.validate_cases(config, store, 0)
        steps.retrain_round(config, store, 0, steps.training_set(store.read_ledger(), 0))
    assert reused["reused"] and not any(r["reused"] for r in rows)
    assert heard == ["planning", "simulation", "simulation", "validation", "training"]
