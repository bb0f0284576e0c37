"""The campaign flow: a campaign directory held, then the one loop (flows/campaign_loop.py: propose →
simulate → validate, predicting before training → retrain, in either mode's cadence)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

from prefect import flow, get_run_logger

from closedloop.flows.campaign_loop import run_campaign
from closedloop.lab import campaign as steps
from closedloop.lab import timing
from closedloop.lab.campaign.clock import StepClock, add_seconds
from closedloop.lab.config import CampaignConfig, load_with_overrides
from closedloop.lab.store import CampaignStore
from closedloop.tasks.campaign import current_flow_run_id, hold_campaign
from closedloop.tasks.progress import stop_events


@contextlib.contextmanager
def ending_told(config: CampaignConfig, store: CampaignStore, seconds: Callable[[], dict]) -> Iterator[None]:
    """A run that fails or is cancelled says so in ``campaign.json`` (with the reason and the
    ``seconds()`` spent) before the error goes on; a run killed outright is found by the next one
    (``record_crash``)."""
    try:
        yield
    except BaseException as err:
        status = "failed" if isinstance(err, Exception) else "cancelled"
        reason = f"{type(err).__name__}: {err}".strip().removesuffix(":")[:1000]
        with contextlib.suppress(Exception):  # the original error matters more than this write
            store.write_state(steps.campaign_state(config, store, status=status, run_id=current_flow_run_id(),
                                                   reason=reason, seconds=seconds()))
        raise


@flow(name="campaign", log_prints=True)
def campaign(config_path: str = "configs/smoke.toml", campaign_dir: str | None = None,
             rounds: int | None = None, strategy: str | None = None, batch_size: int | None = None,
             max_cases: int | None = None, max_error_target: float | None = None,
             patience: int | None = None, mode: Literal["sync", "async"] | None = None,
             max_cpu_seconds: float | None = None, fidelity: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run (or continue) a campaign from a TOML config in ``campaign_dir`` (default runs/NAME).

    The other parameters, when given, override the config: the planner's strategy, the batch size,
    the simulation budget, the stopping rule (GP-expected maximum error target, patience), the
    mode (``sync`` rounds or ``async``, lab/campaign/scheduler.py), the compute budget in CPU-seconds
    and the fidelity levels (``[[fidelity]]`` tables as dicts, cheapest first).
    """
    config = load_with_overrides(config_path, **{
        "budget.rounds": rounds, "planner.strategy": strategy, "budget.batch_size": batch_size,
        "budget.max_cases": max_cases, "budget.max_error_target": max_error_target, "budget.patience": patience,
        "campaign.mode": mode, "budget.max_cpu_seconds": max_cpu_seconds, "fidelity": fidelity})
    directory = steps.campaign_directory(config, campaign_dir)
    store = CampaignStore(directory)
    with hold_campaign(directory) as lock:
        steps.check_same_campaign(store, config)
        if lock.stale:
            steps.record_crash(store, lock.stale)
        clock, before = StepClock(), store.read_state().get("seconds_by_round")
        seconds = lambda: add_seconds(before, clock.seconds())  # noqa: E731 - this run's time on top of earlier runs'
        with timing.listening(clock), ending_told(config, store, seconds):
            reason = run_campaign(config, store, directory)
        clock.stop()
        state = steps.campaign_state(config, store, status="finished", run_id=current_flow_run_id(), reason=reason,
                                     seconds=seconds())
        store.write_state(state)
        stop_events(config, directory, reason)
    get_run_logger().info("campaign %s: %s", config.name, reason)
    return state
