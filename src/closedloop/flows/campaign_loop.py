"""The campaign loop, one for both modes: simulations kept in flight, what ends recorded and
validated, retraining on a worker of its own, the stop rules asked (lab/campaign/scheduler.py
decides what and when; its :class:`~closedloop.lab.campaign.scheduler.Cadence` is all that differs
between sync and async, and its docstring defines a round in each mode).

    until nothing runs and nothing is due:
        fill: stored proposals first (at most ``in_flight`` running), then the planner when the cadence allows
        start a training when the trainer is free and one is due
        wait for the next simulation or training to end:
            a case   → record → (async: its replacement proposed and submitted) → validate (newest
                       checkpoint) → progress, events (sync: once every case of the round's batch has
                       ended, all together)
            training → checkpoint event → the round's report (on the trainer) → the closed round's stop rules

The loop runs in the campaign's flow run, so its task runs and the round artifacts are that run's
(in the UI, on the campaign's page). Simulations run on a task runner of their own
(flows/simulate.py chooses: Dask, ``runner = "dask"``: a local cluster of ``dask_workers`` or
``dask_address``, one for the whole campaign; or ``W`` threads). Training and the round reports run
in this process (on the GPU when there is one, holding its training slot): in the flow's own thread
when nothing else runs (sync; async's closing step), else on a one-thread task runner beside the
simulations, each thread's torch on the cores the simulations leave (:meth:`CampaignLoop.on_trainer`).
Only this loop writes the ledger.
"""
from __future__ import annotations

import queue
from typing import Any

from prefect import get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from closedloop.flows.simulate import simulate, simulation_runner
from closedloop.lab import campaign as steps
from closedloop.lab import timing
from closedloop.lab.campaign import scheduler
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.simulators.concurrency import current_threads, own_threads, threads_beside
from closedloop.tasks.campaign import (
    audit,
    current_flow_run_id,
    propose,
    publish_round,
    record,
    retrain,
    simulate_case,
    simulation_options,
    validate,
)
from closedloop.tasks.progress import ProgressArtifacts, milestone, outcome_events


class CampaignLoop:
    """The loop's state: cases running (and, in sync mode, ended but not yet recorded), the trainer's
    job, what the newest checkpoint was trained on, the stop reason once one holds."""

    def __init__(self, config: CampaignConfig, campaign_dir: str, run_id: str | None):
        self.simulations: Any = None  # the simulations' task runner, while the loop runs
        self.config, self.dir, self.run_id = config, campaign_dir, run_id
        self.cadence = scheduler.cadence(config)
        self.store = CampaignStore(campaign_dir)
        self.ended: queue.Queue[tuple[str, str, PrefectFuture]] = queue.Queue()
        self.running: dict[str, PrefectFuture] = {}
        self.arrived: list[dict[str, Any]] = []  # sync: the batch's outcomes, recorded once all are in
        self.batch_clock: timing.timed | None = None  # sync: the batch's wall time (simulations on Dask too)
        self.trainer_job: PrefectFuture | None = None
        self.closing = False  # the training running is the one that closes the campaign
        self.simulate = simulate_case.with_options(**simulation_options(config, campaign_dir))
        self.progress = ProgressArtifacts(config, campaign_dir)
        self.reason: str | None = None
        self.opened: int | None = None  # the round whose time the clock is counting
        # checkpoints written: read once (the model index), then advanced by each training this loop ends
        self.done = scheduler.newest_round(self.store, config.budget.rounds) + 1
        self.trained_on = scheduler.trained_on(self.store, self.done - 1)
        # async: this thread and the trainer's run torch beside the simulations, on the cores they leave
        self.process_threads = current_threads()  # what a step run in this thread gets (async runs on fewer)
        self.torch_threads = None if self.cadence.batched else threads_beside(scheduler.simulation_workers(config))

    def rounds_done(self) -> int:
        return self.done

    def open(self, round_index: int) -> None:
        """Round ``round_index``'s time starts (once), at the first thing done in it: a campaign
        resumed with nothing left to do adds no time."""
        if self.opened != round_index:
            timing.round_started(round_index)
            self.opened = round_index

    def watch(self, kind: str, key: str, future: PrefectFuture) -> PrefectFuture:
        future.add_done_callback(lambda f: self.ended.put((kind, key, f)))
        return future

    def may_propose(self, ledger: Any, waiting: list[dict[str, Any]]) -> bool:
        """Async: whenever the pool has room. Sync: when the round before is trained and published,
        nothing of a batch is left, and the open round has not proposed yet."""
        if self.reason is not None:
            return False
        if not self.cadence.batched:
            return len(ledger) == 0 or len(waiting) < self.cadence.in_flight
        return (not waiting and not self.running and not self.arrived and self.trainer_job is None
                and len(ledger.cases.of_round(self.rounds_done())) == 0)

    def fill(self, ledger: Any) -> None:
        """Propose when the cadence allows, then submit stored proposals not yet running (those of
        ``ledger`` and the new ones, which the proposal step stored before returning them), at most
        ``in_flight`` at once."""
        held = {row["case_id"] for row in self.arrived}
        waiting = [c for c in scheduler.proposed(ledger) if c["case_id"] not in held]
        if self.may_propose(ledger, waiting):
            self.open(self.rounds_done())
            waiting += propose(self.config, self.dir, self.cadence.in_flight - len(waiting))
        for case in waiting:
            if len(self.running) >= self.cadence.in_flight:
                break
            if case["case_id"] not in self.running:
                self.open(self.rounds_done())
                if self.cadence.batched and self.batch_clock is None:
                    self.batch_clock = timing.timed("simulation").__enter__()
                self.running[case["case_id"]] = self.watch("case", case["case_id"], self.simulations.submit(
                    self.simulate, parameters={"config": self.config, "campaign_dir": self.dir,
                                               "params": case["params"]}))

    def start_training(self, trainer: ThreadPoolTaskRunner, ledger: Any) -> bool:
        """Start the training that is due; True when it ran here to its end (sync, or async's closing
        training), so the loop looks again at once."""
        closing = self.reason is not None and not self.running
        rounds_done = self.rounds_done()
        if self.trainer_job is None and scheduler.retrain_due(self.config, ledger, self.trained_on, rounds_done,
                                                              closing):
            cases = steps.training_set(ledger, rounds_done if self.cadence.batched else None)
            self.closing = closing
            report = self.on_trainer(trainer, "training", str(rounds_done), retrain, {
                "config": self.config, "campaign_dir": self.dir, "round_index": rounds_done, "case_ids": cases})
            if report is not None:
                self.trained(report, trainer)
                return True
        return False

    def on_trainer(self, trainer: ThreadPoolTaskRunner, kind: str, key: str, task: Any,
                   parameters: dict[str, Any]) -> Any:
        """Run a trainer's step (a training, a round's report). Here, in the flow's own thread, to its
        end, returning its result, when nothing else runs meanwhile: sync, and async's closing step once
        no simulation runs. Otherwise (async, beside the simulations) on the trainer's thread, watched,
        returning None, its torch on the cores the W simulations leave.

        Why: a Python thread's OpenMP team beside another thread's makes torch about 2x slower on 2 CPU
        cores (simulators/concurrency.py). Measured on configs/hall.toml in async mode: the closing
        training on 20 cases took 141 s on the trainer's thread on 1 torch thread, 275 s on 2, and
        86.5 s in this thread on 2 (docs/operations.md, Where the time goes)."""
        if self.cadence.batched or (self.closing and not self.running):
            with own_threads(self.process_threads):
                return task(**parameters)
        parameters = {**parameters, "torch_threads": self.torch_threads}
        self.trainer_job = self.watch(kind, key, trainer.submit(task, parameters=parameters))
        return None

    def case_ended(self, case_id: str, future: PrefectFuture) -> None:
        """The outcome (a done row, or a failed row with the error). Async: recorded and a done case
        validated with the newest checkpoint at once; sync: once the batch's last case has ended."""
        del self.running[case_id]
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            params = next(c["params"] for c in scheduler.proposed(self.store.read_ledger()) if c["case_id"] == case_id)
            row = steps.failed_row(self.config, params, outcome, self.run_id)
        else:
            row = {**outcome, "flow_run_id": self.run_id}
        self.arrived.append(row)
        if self.cadence.batched:  # the batch is in when nothing of it runs or waits
            held = {r["case_id"] for r in self.arrived}
            if self.running or any(c["case_id"] not in held for c in scheduler.proposed(self.store.read_ledger())):
                return
        if self.batch_clock is not None:
            self.batch_clock.__exit__(None, None, None)
            self.batch_clock = None
        rows, self.arrived = self.arrived, []
        record(self.dir, rows)
        outcome_events(self.config, self.dir, rows)
        self.progress.update(self.rounds_done())
        done = [r["case_id"] for r in rows if r["status"] == "done"]
        if self.cadence.batched:
            validate(self.config, self.dir)
        elif done:
            # the rules first, on the ledger with this arrival (a budget it spent proposes no replacement);
            # then the replacement (the arrival pending in its evidence), so the worker does not wait on
            # the validation's rollout, which shares its core with the training
            ledger = self.store.read_ledger()
            self.found(steps.stop_reason(self.config, ledger, self.rounds_done(), closed=False))
            self.fill(ledger)
            validate(self.config, self.dir, done)
        self.progress.update(self.rounds_done())

    def training_ended(self, kind: str, future: PrefectFuture, trainer: ThreadPoolTaskRunner) -> None:
        """A training ended: its checkpoint is told, the round's report published on the trainer, the
        rules on the closed round asked, and the next round opened unless this one closes the campaign."""
        self.trainer_job = None
        report = future.result()  # a training that failed fails the campaign (its state says why)
        if kind == "training":
            self.trained(report, trainer)

    def trained(self, report: dict[str, Any], trainer: ThreadPoolTaskRunner) -> None:
        """After a training: the checkpoint told, the rules asked, the round's report published."""
        r = report["round"]
        self.done = r + 1
        self.trained_on = set(report["cases"])
        milestone(self.config, self.dir, "closedloop.checkpoint.written", checkpoint=steps.model_name(r),
                  round=r, cases=len(report["cases"]))
        self.progress.update(self.rounds_done())
        if self.reason is None:
            self.found(steps.stop_reason(self.config, self.store.read_ledger(), r))
        if not (self.closing or self.cadence.batched):
            self.open(r + 1)  # async: the next round runs beside this report (sync: from its proposal)
        self.on_trainer(trainer, "report", str(r), publish_round,
                        {"config": self.config, "campaign_dir": self.dir, "round_index": r})

    def found(self, reason: str | None) -> None:
        if reason and self.reason is None:
            self.reason = reason
            get_run_logger().info("no more proposals: %s (%d case(s) still running)", reason, len(self.running))

    def resume(self) -> None:
        """What a killed run left: done cases validated, the stop reason it had found (from the ledger
        and the checkpoints), unpublished rounds published."""
        ledger = self.store.read_ledger()
        if len(ledger.cases.unvalidated()):
            self.open(self.rounds_done())
            validate(self.config, self.dir, None if self.cadence.batched else scheduler.unvalidated(ledger))
        done = self.rounds_done()
        if len(ledger):
            ledger = self.store.read_ledger()
            self.found((steps.stop_reason(self.config, ledger, done - 1) if done else None)
                       or (None if self.cadence.batched else steps.stop_reason(self.config, ledger, done, closed=False)))
        for r in range(done):
            if not steps.round_published(self.store, r):
                publish_round(self.config, self.dir, r)

    def run(self) -> str | None:
        with own_threads(self.torch_threads):
            return self.loop()

    def loop(self) -> str | None:
        self.resume()
        with simulation_runner(self.config) as self.simulations, ThreadPoolTaskRunner(max_workers=1) as trainer:
            while True:
                ledger = self.store.read_ledger()
                if len(ledger) and not self.cadence.batched:
                    self.found(steps.stop_reason(self.config, ledger, self.rounds_done(), closed=False))
                self.fill(ledger)
                if self.start_training(trainer, ledger):  # what it trains on (validated cases) fill leaves alone
                    continue
                if not self.running and self.trainer_job is None:
                    break
                kind, key, future = self.ended.get()
                if kind == "case":
                    self.case_ended(key, future)
                else:
                    self.training_ended(kind, future, trainer)
        self.progress.update(self.rounds_done())
        return self.reason


def run_campaign(config: CampaignConfig, store: CampaignStore, directory: str) -> str | None:
    """Repair what a killed run left (damaged files set aside; cases of complete rounds simulated
    again), then the loop."""
    checked = audit(config, directory)
    if checked.resimulate:
        record(directory, simulate(config, directory, checked.resimulate, refresh=True))
    store.write_state(steps.campaign_state(config, store, status="running", run_id=current_flow_run_id(),
                                           repairs=checked.damaged))
    return CampaignLoop(config, directory, current_flow_run_id()).run()
