"""The asynchronous campaign: simulation workers kept full, each case validated and replaced as it
arrives, retraining beside them on a worker of its own (lab/campaign/scheduler.py decides what and
when; its docstring defines a round in this mode).

    until nothing runs and nothing is due:
        fill the pool: stored proposals first, then the planner with every proposed case pending
        start a training when the trainer is free and one is due
        wait for the next simulation or training to end:
            a case   → record → validate (newest checkpoint) → progress, events
            training → checkpoint event → publish the round's report (on the trainer)

Simulations run on this subflow's task runner: Dask (``runner = "dask"``: a local cluster of
``dask_workers``, or ``dask_address``) or ``W`` threads. Training and the round reports run on a
one-thread task runner of their own, in this process (on the GPU when there is one, holding its
training slot). Only this loop writes the ledger.
"""
from __future__ import annotations

import queue
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from closedloop.flows.simulate import simulation_runner
from closedloop.lab import campaign as steps
from closedloop.lab import timing
from closedloop.lab.campaign import scheduler
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.tasks.campaign import (
    audit,
    current_flow_run_id,
    publish_round,
    record,
    simulate_case,
    simulation_options,
)
from closedloop.tasks.campaign_async import (
    propose_next,
    retrain_cases,
    validate_arrivals,
)
from closedloop.tasks.progress import ProgressArtifacts, milestone, outcome_events


class AsyncCampaign:
    """The loop's state: cases running, the trainer's job, what the newest checkpoint was trained on."""

    def __init__(self, config: CampaignConfig, campaign_dir: str, run_id: str | None):
        self.config, self.dir, self.run_id = config, campaign_dir, run_id
        self.store = CampaignStore(campaign_dir)
        self.ended: queue.Queue[tuple[str, str, PrefectFuture]] = queue.Queue()
        self.running: dict[str, PrefectFuture] = {}
        self.trainer_job: PrefectFuture | None = None
        self.closing = False  # the training running is the one that closes the campaign
        self.simulate = simulate_case.with_options(**simulation_options(config, campaign_dir))
        self.progress = ProgressArtifacts(config, campaign_dir)
        self.reason: str | None = None
        newest = self.rounds_done() - 1
        self.trained_on = scheduler.trained_on(self.store, newest)

    def rounds_done(self) -> int:
        return scheduler.newest_round(self.store, self.config.budget.rounds) + 1

    def watch(self, kind: str, key: str, future: PrefectFuture) -> PrefectFuture:
        future.add_done_callback(lambda f: self.ended.put((kind, key, f)))
        return future

    def fill(self, ledger: Any) -> None:
        """Propose up to the pool's size, then submit every stored proposal not yet running (those of
        ``ledger`` and the new ones, which the proposal step stored before returning them)."""
        waiting = scheduler.proposed(ledger)
        if self.reason is None and (len(ledger) == 0 or len(waiting) < scheduler.pool_size(self.config)):
            waiting += propose_next(self.config, self.dir, scheduler.pool_size(self.config) - len(waiting))
        for case in waiting:
            if case["case_id"] not in self.running:
                self.running[case["case_id"]] = self.watch(
                    "case", case["case_id"], self.simulate.submit(self.config, self.dir, case["params"]))

    def start_training(self, trainer: ThreadPoolTaskRunner, ledger: Any) -> None:
        closing = self.reason is not None and not self.running
        rounds_done = self.rounds_done()
        if self.trainer_job is None and scheduler.retrain_due(self.config, ledger, self.trained_on, rounds_done,
                                                              closing):
            cases = steps.training_set(ledger)
            self.closing = closing
            self.trainer_job = self.watch("training", str(rounds_done), trainer.submit(retrain_cases, parameters={
                "config": self.config, "campaign_dir": self.dir, "round_index": rounds_done, "case_ids": cases}))

    def case_ended(self, case_id: str, future: PrefectFuture) -> None:
        """Record the outcome, validate a done case with the newest checkpoint, tell the UI."""
        del self.running[case_id]
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            row = steps.failed_row(self.config, next(c["params"] for c in scheduler.proposed(self.store.read_ledger())
                                                     if c["case_id"] == case_id), outcome, self.run_id)
        else:
            row = {**outcome, "flow_run_id": self.run_id}
        record(self.dir, [row])
        outcome_events(self.config, self.dir, [row])
        if row["status"] == "done":
            validate_arrivals(self.config, self.dir, [row["case_id"]])
        self.progress.update(self.rounds_done())

    def job_ended(self, kind: str, key: str, future: PrefectFuture, trainer: ThreadPoolTaskRunner) -> None:
        """A training ended: its checkpoint is told and the round's report published on the trainer;
        the rules that look at closed rounds are evaluated."""
        self.trainer_job = None
        report = future.result()  # a training that failed fails the campaign (its state says why)
        if kind == "training":
            r = report["round"]
            if not self.closing:  # after the closing training no round opens (its report counts in round r)
                timing.round_started(r + 1)
            self.trained_on = set(report["cases"])
            milestone(self.config, self.dir, "closedloop.checkpoint.written", checkpoint=steps.model_name(r),
                      round=r, cases=len(report["cases"]))
            self.trainer_job = self.watch("report", str(r), trainer.submit(publish_round, parameters={
                "config": self.config, "campaign_dir": self.dir, "round_index": r}))
            if self.reason is None:
                self.found(steps.stop_reason(self.config, self.store.read_ledger(), r))
            self.progress.update(self.rounds_done())

    def found(self, reason: str | None) -> None:
        if reason and self.reason is None:
            self.reason = reason
            get_run_logger().info("no more proposals: %s (%d case(s) still running)", reason, len(self.running))

    def run(self) -> str | None:
        timing.round_started(self.rounds_done())
        ledger = self.store.read_ledger()
        validate_arrivals(self.config, self.dir, scheduler.unvalidated(ledger))
        done = self.rounds_done()
        if len(ledger):  # a reason a killed run had found, from the ledger and the checkpoints
            ledger = self.store.read_ledger()
            self.found((steps.stop_reason(self.config, ledger, done - 1) if done else None)
                       or steps.stop_reason(self.config, ledger, done, closed=False))
        for r in range(self.rounds_done()):
            if not steps.round_published(self.store, r):
                publish_round(self.config, self.dir, r)
        with ThreadPoolTaskRunner(max_workers=1) as trainer:
            while True:
                ledger = self.store.read_ledger()
                if len(ledger):
                    self.found(steps.stop_reason(self.config, ledger, self.rounds_done(), closed=False))
                self.fill(ledger)
                self.start_training(trainer, ledger)  # what it trains on (validated cases) fill leaves alone
                if not self.running and self.trainer_job is None:
                    break
                kind, key, future = self.ended.get()
                if kind == "case":
                    self.case_ended(key, future)
                else:
                    self.job_ended(kind, key, future, trainer)
        self.progress.update(self.rounds_done())
        return self.reason


@flow(name="campaign-async", log_prints=True)
def campaign_async(config: CampaignConfig, campaign_dir: str, run_id: str | None = None) -> str | None:
    """The asynchronous loop on this flow's task runner; ``run_id`` is the campaign's flow run (for the ledger)."""
    return AsyncCampaign(config, campaign_dir, run_id).run()


def run_async(config: CampaignConfig, store: CampaignStore, directory: str) -> str | None:
    """Repair what a killed run left (cases set aside go back to ``proposed``), then the loop."""
    checked = audit(config, directory)
    store.write_state(steps.campaign_state(config, store, status="running", run_id=current_flow_run_id(),
                                           repairs=checked.damaged))
    loop = campaign_async.with_options(task_runner=simulation_runner(config))
    return loop(config, directory, current_flow_run_id())
