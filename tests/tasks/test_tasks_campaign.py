"""Tasks of the campaign flow, outside a flow run: ledger rows from a mapped simulation's outcomes, the
cache key of a simulation, the run logger, the campaign lock, and the worker-thread notice filtered out."""
from __future__ import annotations

import json
import logging

import pytest

from closedloop.lab import campaign as steps
from closedloop.lab.config import load_campaign_config
from closedloop.lab.lock import CampaignLocked, campaign_lock
from closedloop.tasks import campaign as tasks
from tests.conftest import SMOKE

BATCH = [{"source_x": 2.0, "source_y": 1.0, "inlet_speed": 0.5}, {"source_x": 7.0, "source_y": 4.0, "inlet_speed": 1.0}]


class Finished:
    """A future whose task has finished with ``outcome`` (a row, or the exception it raised)."""

    def __init__(self, outcome):
        self.outcome = outcome

    def result(self, raise_on_failure: bool = True):
        assert raise_on_failure is False  # a failed simulation becomes a row, it does not stop the batch
        return self.outcome


@pytest.fixture(scope="module")
def config():
    return load_campaign_config(SMOKE)


def test_outcomes_become_done_rows_or_failed_rows(config):
    done = {"case_id": "abc", "status": "done", "sim_seconds": 1.5}
    rows = tasks.collect_outcomes(config, BATCH, [Finished(done), Finished(RuntimeError("solver diverged"))])
    assert rows[0] == {**done, "flow_run_id": None}
    failed = rows[1]
    assert (failed["case_id"], failed["status"], failed["flow_run_id"]) == (
        steps.scenario_for(config, BATCH[1]).case_id(), "failed", None)
    assert failed["error"] == "RuntimeError: solver diverged (failed 3 attempts)"


def test_a_simulation_is_cached_by_its_case_id_and_device(config):
    key = tasks.simulation_cache_key(None, {"config": config, "campaign_dir": "anywhere", "params": BATCH[0]})
    assert key == steps.simulation_cache_key(config, BATCH[0]) == f"simulate-{steps.scenario_for(config, BATCH[0]).case_id()}-cpu"


def test_outside_a_run_the_logger_is_the_module_s_and_there_is_no_flow_run():
    assert tasks.run_logger() is logging.getLogger("closedloop.tasks.campaign")
    assert tasks.current_flow_run_id() is None


def test_hold_campaign_holds_the_directory_lock(tmp_path):
    with tasks.hold_campaign(str(tmp_path / "camp")):
        with pytest.raises(CampaignLocked):
            with campaign_lock(tmp_path / "camp"):
                pass
    with campaign_lock(tmp_path / "camp"):  # released
        pass


def test_the_worker_thread_timeout_notice_is_filtered_out():
    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("prefect.task_runs", logging.WARNING, __file__, 1, msg, None, None)

    notice = tasks._ThreadTimeoutNotice()
    assert not notice.filter(record("Timeout of %s seconds configured for this task, but the task is running in a "
                                    "worker thread; it cannot be interrupted"))
    assert notice.filter(record("Task run failed"))
    assert any(isinstance(f, tasks._ThreadTimeoutNotice) for f in logging.getLogger("prefect.task_runs").filters)


def test_a_proposal_is_stored_before_it_is_handed_out(tmp_path):
    from closedloop.lab.store import CampaignStore
    from tests.lab.planner_ledgers import planner_config

    config = planner_config().with_overrides(**{"campaign.mode": "async", "budget.max_cases": 5})
    store = CampaignStore(tmp_path / "camp")
    first = tasks.propose.fn(config, str(store.root), 3)
    ledger = store.read_ledger()
    # the initial design (4 Sobol cases, all at once), stored as proposed, round 0
    assert [c["case_id"] for c in first] == ledger["case_id"].tolist() and len(first) == 4
    assert set(ledger["status"]) == {"proposed"} and set(ledger["round"]) == {0}
    assert [json.loads(p) for p in ledger["parameters"]] == [c["params"] for c in first]
    # the budget leaves one more, whatever is asked for
    more = tasks.propose.fn(config, str(store.root), 3)
    assert len(more) == 1 and len(store.read_ledger()) == 5
    assert tasks.validate.fn(config, str(store.root), []) == []


def test_a_sync_proposal_is_the_rounds_batch_whatever_is_asked(tmp_path):
    from closedloop.lab.store import CampaignStore
    from tests.lab.planner_ledgers import planner_config

    config = planner_config().with_overrides(**{"campaign.mode": "sync", "budget.batch_size": 3})
    store = CampaignStore(tmp_path / "camp")
    assert len(tasks.propose.fn(config, str(store.root), 1)) == config.budget.initial_cases  # round 0: the design
