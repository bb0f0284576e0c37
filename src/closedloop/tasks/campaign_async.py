"""Tasks of the asynchronous campaign; each wraps one plain step of ``closedloop.lab.campaign.scheduler``."""
from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from closedloop.lab import campaign as steps
from closedloop.lab.campaign import scheduler
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.tasks.campaign import current_flow_run_id, run_logger, train_in_slot


@task(name="propose-next", cache_policy=NO_CACHE)
def propose_next(config: CampaignConfig, campaign_dir: str, n: int) -> list[dict[str, Any]]:
    """The next cases, with every proposed case pending; stored in the ledger before they are returned
    as ``[{"case_id", "params"}]``."""
    store = CampaignStore(campaign_dir)
    proposal = scheduler.propose_next(config, store, store.read_ledger(), n)
    rows = scheduler.store_proposal(config, store, proposal, current_flow_run_id())
    run_logger().info("proposed %d case(s) by %s (round %d)", len(rows), proposal.strategy, proposal.round)
    return [{"case_id": r["case_id"], "params": p} for r, p in zip(rows, proposal.parameters)]


@task(name="validate-arrivals", cache_policy=NO_CACHE)
def validate_arrivals(config: CampaignConfig, campaign_dir: str, case_ids: list[str]) -> list[dict[str, Any]]:
    """Predict finished cases with the newest checkpoint, before any training on them."""
    if not case_ids:
        return []
    store = CampaignStore(campaign_dir)
    return steps.validate_cases(config, store, scheduler.open_round(config, store), case_ids)


@task(name="retrain-async", cache_policy=NO_CACHE)
def retrain_cases(config: CampaignConfig, campaign_dir: str, round_index: int,
                  case_ids: list[str]) -> dict[str, Any]:
    """Round ``round_index``'s training on ``case_ids`` (every validated case when it was started),
    warm-started from the previous checkpoint; on a GPU it holds that GPU's training slot."""
    report = train_in_slot(config, campaign_dir, round_index, case_ids)
    return {"round": round_index, "cases": list(case_ids), "initial_loss": report.initial_loss,
            "best_loss": report.best_loss, "seconds": report.seconds}
