"""Tasks of the campaign flow; each wraps one plain step of ``closedloop.lab.campaign``."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from prefect import get_client, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.states import Crashed

from closedloop.lab import campaign as steps
from closedloop.lab.campaign import scheduler
from closedloop.lab.config import CampaignConfig
from closedloop.lab.lock import LockInfo, campaign_lock
from closedloop.lab.store import CampaignStore
from closedloop.simulators.concurrency import own_threads
from closedloop.tasks import gpu_slot


class _ThreadTimeoutNotice(logging.Filter):
    """Drop Prefect's warning that a timeout cannot interrupt a worker thread's blocking call.

    The reference solver is a Python loop over time steps, which the timeout interrupts at its next
    bytecode, so the warning (one per simulation) would only be noise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout of %s seconds configured for this task, but the task is "
                                              "running in a worker thread")


logging.getLogger("prefect.task_runs").addFilter(_ThreadTimeoutNotice())


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The flow or task run's logger; a module logger when called outside a run (e.g. ``flow.fn``)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def current_flow_run_id() -> str | None:
    rid = flow_run.get_id()
    return str(rid) if rid else None


@contextlib.contextmanager
def hold_campaign(campaign_dir: str) -> Iterator[LockInfo]:
    """Hold the campaign directory's lock for the flow (a second campaign there refuses to start).

    A lock record left by a run that died (killed, lost) is taken over; that run's Prefect flow
    run, still Running in the UI, is marked Crashed through the API.
    """
    with campaign_lock(campaign_dir, owner=current_flow_run_id()) as lock:
        for note in lock.notes:
            run_logger().warning(note)
        dead = (lock.stale or {}).get("owner")
        if dead and dead != current_flow_run_id():
            mark_crashed(dead, f"taken over by flow run {current_flow_run_id()}: its process ended without "
                               f"finishing (lock record {lock.stale})")
        yield lock


def mark_crashed(flow_run_id: str, message: str) -> bool:
    """Set a flow run that is not in a final state to Crashed; False (and a warning) if it cannot."""
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
            if run.state is not None and run.state.is_final():
                return False
            client.set_flow_run_state(UUID(flow_run_id), Crashed(message=message[:2000]), force=True)
        run_logger().warning("flow run %s marked Crashed: %s", flow_run_id, message)
        return True
    except Exception as err:  # noqa: BLE001 - the campaign resumes whatever the API says
        run_logger().warning("could not mark flow run %s Crashed: %s", flow_run_id, err)
        return False


def simulation_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache simulate tasks by scenario hash (the case id), not by hashing the config object."""
    return steps.simulation_cache_key(parameters["config"], parameters["params"])


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed simulation unless its error is permanent (bad input, memory exhausted)."""
    error = state.data if isinstance(state.data, BaseException) else None
    return error is None or not steps.is_permanent(error)


@task(name="simulate-case", cache_key_fn=simulation_cache_key, persist_result=True, retry_condition_fn=transient_only)
def simulate_case(config: CampaignConfig, campaign_dir: str, params: dict[str, float]) -> dict[str, Any]:
    """One reference simulation (skipped when its case file already exists)."""
    row = steps.run_case(config, CampaignStore(campaign_dir), params)
    get_run_logger().info("case %s: %s", row["case_id"], "reused" if row["reused"] else
                          f"simulated in {row['sim_seconds']:.2f} s")
    return row


def bounded_submit(task_: Any, config: CampaignConfig, campaign_dir: str, batch: list[dict[str, float]],
                   limit: int) -> list[Any]:
    """Submit the batch's simulations with at most ``limit`` running at once (a case starts when one ends),
    so none waits inside its task, where the wait would count towards its timeout."""
    futures: list[Any] = []
    running: list[Any] = []
    for params in batch:
        while len(running) >= limit:
            done = next(as_completed(running))
            running.remove(done)
        future = task_.submit(config, campaign_dir, params)
        futures.append(future)
        running.append(future)
    return futures


def collect_outcomes(config: CampaignConfig, batch: list[dict[str, float]], futures: Any) -> list[dict[str, Any]]:
    """Ledger rows for a mapped simulation: done rows, or failed rows with the error text."""
    run_id = current_flow_run_id()
    rows = []
    for params, future in zip(batch, futures):
        outcome = future.result(raise_on_failure=False)
        failed = isinstance(outcome, BaseException)
        rows.append(steps.failed_row(config, params, outcome, run_id) if failed else {**outcome, "flow_run_id": run_id})
    return rows


def simulation_options(config: CampaignConfig, campaign_dir: str, refresh: bool = False) -> dict[str, Any]:
    """The simulate task's options: retries with exponential backoff, the configured timeout, and
    results cached in the campaign directory (``refresh`` ignores the cache, for repairs)."""
    sim = config.simulation
    return {"retries": sim.retries, "retry_delay_seconds": sim.retry_delays() or 0,
            "timeout_seconds": sim.timeout_seconds, "refresh_cache": refresh,
            "result_storage": CampaignStore(campaign_dir).cache_dir.resolve()}


def simulate_batch(config: CampaignConfig, campaign_dir: str, batch: list[dict[str, float]],
                   refresh: bool = False, run_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Simulate a batch in parallel on the current flow's task runner (flows/simulate.py chooses
    threads or Dask): retries with exponential backoff, the configured timeout, and results cached
    per case in the campaign directory (``refresh`` ignores the cache, for repairs). At most
    ``limit`` run at once (a case starts when one ends); None submits them all (a Dask cluster's
    workers bound what runs).

    A finished simulation is never run twice in any case: its case file is written before the task
    completes, and :func:`closedloop.lab.campaign.simulation.run_case` skips a case whose file exists. The
    cache adds that a resumed flow run shows those tasks as Cached and keeps their original timings.
    """
    task_ = simulate_case.with_options(**simulation_options(config, campaign_dir, refresh))
    if limit is None:
        futures = task_.map(unmapped(config), unmapped(campaign_dir), batch)
    else:
        futures = bounded_submit(task_, config, campaign_dir, batch, limit)
    rows = collect_outcomes(config, batch, futures)
    # in the simulate-batch subflow, the ledger names the campaign's flow run
    return [{**row, "flow_run_id": run_id} for row in rows] if run_id else rows


@task(name="audit", cache_policy=NO_CACHE)
def audit(config: CampaignConfig, campaign_dir: str) -> steps.AuditReport:
    """Before resuming: clear temporary files, verify checksums, set damaged files aside."""
    report = steps.audit(config, CampaignStore(campaign_dir))
    logger = get_run_logger()
    if report.temp_files:
        logger.info("removed %d temporary file(s) left by an interrupted run", len(report.temp_files))
    for line in report.notes:
        logger.info(line)
    for line in report.damaged:
        logger.warning(line)
    return report


@task(name="propose", cache_policy=NO_CACHE)
def propose(config: CampaignConfig, campaign_dir: str, n: int) -> list[dict[str, Any]]:
    """The next cases (``scheduler.propose_next``: sync mode's round batch, async mode's ``n``
    replacements), with every proposed case pending; stored in the ledger before they are returned
    as ``[{"case_id", "params"}]``."""
    store = CampaignStore(campaign_dir)
    proposal = scheduler.propose_next(config, store, store.read_ledger(), n)
    rows = scheduler.store_proposal(config, store, proposal, current_flow_run_id())
    run_logger().info("round %d: proposed %d case(s) by %s", proposal.round, len(rows), proposal.strategy)
    return [{"case_id": r["case_id"], "params": p} for r, p in zip(rows, proposal.parameters)]


@task(name="record", cache_policy=NO_CACHE)
def record(campaign_dir: str, rows: list[dict[str, Any]]) -> None:
    """Write simulation outcomes into the ledger (one atomic write)."""
    steps.record_outcomes(CampaignStore(campaign_dir), rows)


@task(name="validate", cache_policy=NO_CACHE)
def validate(config: CampaignConfig, campaign_dir: str, case_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Predict finished cases with the newest checkpoint, before any training on them, in the round
    it opens (``case_ids`` None: that round's done cases not yet predicted)."""
    store = CampaignStore(campaign_dir)
    if case_ids is not None and not case_ids:
        return []
    return steps.validate_cases(config, store, scheduler.open_round(config, store), case_ids)


@task(name="retrain", cache_policy=NO_CACHE)
def retrain(config: CampaignConfig, campaign_dir: str, round_index: int,
            case_ids: list[str] | None = None, torch_threads: int | None = None) -> dict[str, Any]:
    """Round ``round_index``'s training on ``case_ids`` (None: every validated case of rounds up to it),
    warm-started from the previous checkpoint, its checkpoint saved. With a GPU present, training
    holds that GPU's concurrency slot (one training job per GPU). ``torch_threads``: this thread's
    torch threads while it trains (simulators/concurrency.own_threads; None: as they are)."""
    if case_ids is None:
        case_ids = steps.training_set(CampaignStore(campaign_dir).read_ledger(), round_index)
    with own_threads(torch_threads):
        report = train_in_slot(config, campaign_dir, round_index, case_ids)
    return {"round": round_index, "cases": list(case_ids), "initial_loss": report.initial_loss,
            "best_loss": report.best_loss, "seconds": report.seconds}


def train_in_slot(config: CampaignConfig, campaign_dir: str, round_index: int, case_ids: list[str]) -> Any:
    """``retrain_round`` on ``case_ids``, holding the GPU's training slot when there is one, logged."""
    with gpu_slot.gpu_training_slot(gpu_slot.training_gpu()) as slot:
        if slot:
            run_logger().info("round %d: holding training slot %s", round_index, slot)
        report = steps.retrain_round(config, CampaignStore(campaign_dir), round_index, case_ids)
    run_logger().info("round %d: trained on %d cases, loss %.4f -> %.4f (best epoch %d of %d, largest spike "
                      "%.2fx) in %.1f s", round_index, len(case_ids), report.initial_loss, report.best_loss,
                      report.best_epoch, len(report.losses), report.largest_spike, report.seconds)
    for warning in report.warnings():
        run_logger().warning("round %d: training did not learn: %s", round_index, warning)
    return report


@task(name="publish-round", cache_policy=NO_CACHE)
def publish_round(config: CampaignConfig, campaign_dir: str, round_index: int,
                  torch_threads: int | None = None) -> None:
    """Artifacts of the round: a table of its cases and errors; learning curve and plane image.

    The same report is written to figures/round_NNN.md, last, so a round whose report is missing
    (the run stopped after training) is published when the campaign resumes. ``torch_threads`` as
    ``retrain``'s.
    """
    store = CampaignStore(campaign_dir)
    with own_threads(torch_threads):
        report = steps.round_report(config, store, round_index)
    create_table_artifact(table=report.table, key=store.artifact_key(config.name, "round", round_index, "cases"),
                          description=f"Campaign {config.name}, round {round_index}: cases and validation errors")
    create_markdown_artifact(markdown=report.markdown, key=store.artifact_key(config.name, "round", round_index, "report"),
                             description=f"Campaign {config.name}, round {round_index}")
    steps.write_round_report(store, round_index, report)
