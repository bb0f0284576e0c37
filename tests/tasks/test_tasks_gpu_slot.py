"""One training job per GPU: the retrain task holds a global concurrency slot when a GPU is present.

The GPU is faked (``training_gpu`` patched to return device 0) and training is replaced by a probe that
records how many trainings run at once; each probe waits briefly for a second one to join it, so two
trainings that are allowed to overlap always do.
"""
from __future__ import annotations

import threading
import uuid

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from closedloop.lab import campaign as steps
from closedloop.lab.config import load_campaign_config
from closedloop.surrogates.training import TrainReport
from closedloop.tasks import campaign as tasks
from closedloop.tasks import gpu_slot

pytestmark = pytest.mark.usefixtures("prefect_harness")


class TrainingProbe:
    """Stands in for ``retrain_round``: counts trainings in progress, remembers the most at once."""

    def __init__(self, join_wait: float = 1.0) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0
        self.joined = threading.Event()
        self.join_wait = join_wait

    def __call__(self, config, store, round_index, case_ids) -> TrainReport:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
            if self.running > 1:
                self.joined.set()
        self.joined.wait(self.join_wait)  # give a concurrent training the chance to overlap
        with self.lock:
            self.running -= 1
        return TrainReport(initial_loss=1.0, best_loss=0.5, seconds=0.0)


@pytest.fixture
def limit_prefix(monkeypatch) -> str:
    prefix = f"test-train-gpu-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(gpu_slot, "LIMIT_PREFIX", prefix)
    return prefix


def _two_trainings_at_once(fast_config, tmp_path) -> None:
    config = load_campaign_config(fast_config)

    @flow
    def two_campaigns_train():
        futures = [tasks.retrain.submit(config, str(tmp_path / f"campaign-{i}"), 0) for i in range(2)]
        return [f.result() for f in futures]

    results = two_campaigns_train()
    assert [r["best_loss"] for r in results] == [0.5, 0.5]


def _limit(name: str):
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def test_limit_name_names_the_device():
    assert gpu_slot.training_limit_name(0) == "closedloop-train-gpu-0"
    assert gpu_slot.training_limit_name(3) == "closedloop-train-gpu-3"
    with pytest.raises(ValueError, match="gpu"):
        gpu_slot.training_limit_name(-1)


def test_one_training_per_gpu(fast_config, tmp_path, monkeypatch, limit_prefix):
    probe = TrainingProbe()
    monkeypatch.setattr(steps, "retrain_round", probe)
    monkeypatch.setattr(gpu_slot, "training_gpu", lambda: 0)
    _two_trainings_at_once(fast_config, tmp_path)
    assert probe.calls == 2 and probe.most == 1  # serialised by the slot
    limit = _limit(f"{limit_prefix}-0")
    assert limit.limit == 1 and limit.active_slots == 0  # created with one slot, released after


def test_without_the_limit_the_same_trainings_overlap(fast_config, tmp_path, monkeypatch, limit_prefix):
    # the control: the same two jobs with two slots (as an operator could set) do run together,
    # so the serialisation above comes from the slot and not from the task runner
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=f"{limit_prefix}-0", limit=2))
    probe = TrainingProbe(join_wait=30.0)
    monkeypatch.setattr(steps, "retrain_round", probe)
    monkeypatch.setattr(gpu_slot, "training_gpu", lambda: 0)
    _two_trainings_at_once(fast_config, tmp_path)
    assert probe.calls == 2 and probe.most == 2
    assert _limit(f"{limit_prefix}-0").limit == 2  # an operator's setting is never overwritten


def test_cpu_training_takes_no_slot(fast_config, tmp_path, monkeypatch, limit_prefix):
    probe = TrainingProbe(join_wait=30.0)
    monkeypatch.setattr(steps, "retrain_round", probe)
    monkeypatch.setattr(gpu_slot, "training_gpu", lambda: None)
    _two_trainings_at_once(fast_config, tmp_path)
    assert probe.most == 2
    with pytest.raises(ObjectNotFound):
        _limit(f"{limit_prefix}-0")
