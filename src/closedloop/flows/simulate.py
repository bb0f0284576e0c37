"""Where reference simulations run: threads, or Dask (the one module that chooses between them).

:func:`simulation_runner` is the campaign loop's runner in both modes: ``W`` threads, or with
``[simulation] runner = "dask"`` a :class:`prefect_dask.DaskTaskRunner` (a local cluster of
``dask_workers`` processes, one thread each, bound to 127.0.0.1, or with ``dask_address`` an
existing scheduler), one for the whole campaign. :func:`simulate` runs one batch outside the loop
(the repair step's cases to simulate again), on Dask as the subflow ``simulate-batch``. Retries,
backoff, timeout, caching and failed rows are those of the ``simulate-case`` task either way.
"""
from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from closedloop.lab.campaign.scheduler import simulation_workers
from closedloop.lab.config import CampaignConfig, SimulationConfig
from closedloop.tasks.campaign import current_flow_run_id, simulate_batch


def dask_task_runner(sim: SimulationConfig) -> DaskTaskRunner:
    """The Dask task runner the configuration asks for: an existing scheduler or a local cluster."""
    if sim.dask_address:
        return DaskTaskRunner(address=sim.dask_address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": sim.dask_workers, "threads_per_worker": 1,
                                          "processes": True, "host": "127.0.0.1", "dashboard_address": None})


@flow(name="simulate-batch", log_prints=True)
def simulate_batch_flow(config: CampaignConfig, campaign_dir: str, batch: list[dict[str, float]],
                        refresh: bool = False, run_id: str | None = None) -> list[dict[str, Any]]:
    """Simulate a batch on this flow's task runner; ``run_id`` is the campaign's flow run (for the ledger)."""
    return simulate_batch(config, campaign_dir, batch, refresh=refresh, run_id=run_id, limit=None)


def simulation_runner(config: CampaignConfig) -> DaskTaskRunner | ThreadPoolTaskRunner:
    """The task runner of the campaign loop's simulations (both modes): Dask as configured, or ``W`` threads
    (lab/campaign/scheduler.simulation_workers)."""
    if config.simulation.runner == "dask":
        return dask_task_runner(config.simulation)
    return ThreadPoolTaskRunner(max_workers=simulation_workers(config))


def simulate(config: CampaignConfig, campaign_dir: str, batch: list[dict[str, float]],
             refresh: bool = False) -> list[dict[str, Any]]:
    """Ledger rows for ``batch``, simulated where ``config.simulation.runner`` says."""
    if config.simulation.runner == "dask" and batch:
        runner = simulate_batch_flow.with_options(task_runner=dask_task_runner(config.simulation))
        return runner(config, campaign_dir, batch, refresh=refresh, run_id=current_flow_run_id())
    return simulate_batch(config, campaign_dir, batch, refresh=refresh, limit=simulation_workers(config))
