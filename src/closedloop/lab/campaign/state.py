"""The campaign's state: which rounds are complete and published, and ``campaign.json``.

A round is complete once its checkpoint is written and indexed, published once its report is;
``campaign.json`` holds the campaign's identity (scenario, design, seed) and its summary.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore, now_iso


def model_name(round_index: int) -> str:
    return f"round_{round_index:03d}"


def round_complete(store: CampaignStore, round_index: int) -> bool:
    """A round is complete once its checkpoint is written and its checksum indexed."""
    return store.has_checkpoint(model_name(round_index))


def report_path(store: CampaignStore, round_index: int) -> Path:
    return store.figures_dir / f"{model_name(round_index)}.md"


def round_published(store: CampaignStore, round_index: int) -> bool:
    """The round's report (figures/round_NNN.md, written last by publishing) exists."""
    return report_path(store, round_index).exists()


def check_same_campaign(store: CampaignStore, config: CampaignConfig) -> None:
    """Refuse to mix two different campaigns (other scenario or design) in one directory."""
    state = store.read_state()
    key = config.model_dump(mode="json", include={"scenario", "design", "seed"})
    if state and state.get("identity") not in (None, key):
        raise ValueError(f"{store.root}: holds a campaign with another scenario, design or seed "
                         f"({state.get('name')!r}); use a new --dir")


def campaign_directory(config: CampaignConfig, campaign_dir: str | None) -> str:
    """``campaign_dir`` (default runs/NAME), refused unless it is, or can become, a directory."""
    path = Path(campaign_dir) if campaign_dir else Path("runs") / config.name
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"campaign_dir: {path} cannot be a campaign directory: {existing} is a file")
    return str(path)


STATUSES = ("running", "finished", "failed", "cancelled", "crashed")


def campaign_state(config: CampaignConfig, store: CampaignStore, *, status: str,
                   run_id: str | None = None, reason: str | None = None,
                   repairs: list[str] | None = None,
                   seconds: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """The summary written to ``campaign.json`` and returned by the flow (``repairs``: damage found
    by :func:`audit`, appended to earlier runs' findings). ``status`` is one of :data:`STATUSES`;
    every status but ``running`` ends a run and is appended to ``history`` with its reason.
    ``seconds``: wall seconds by round and step (lab/campaign/clock.py), every run's so far; None
    keeps what ``campaign.json`` held."""
    if status not in STATUSES:
        raise ValueError(f"status: {status!r} is not one of {STATUSES}")
    previous = store.read_state()
    history = list(previous.get("history", []))
    if status != "running":
        history.append({"run": run_id, "status": status, "reason": reason, "at": now_iso()})
    ledger = store.read_ledger()
    rounds_done = [r for r in range(config.budget.rounds) if round_complete(store, r)]
    runs = list(previous.get("flow_run_ids", []))
    if run_id and run_id not in runs:
        runs.append(run_id)
    validated = ledger.cases.validated()
    last = validated[validated["round"] == validated["round"].max()] if len(validated) else validated
    return {
        "name": config.name, "config_hash": config.config_hash(), "status": status,
        "stop_reason": reason, "strategy": config.planner.strategy, "batch_size": config.budget.batch_size,
        "max_cases": config.budget.max_cases, "identity": config.model_dump(mode="json", include={"scenario", "design", "seed"}),
        "rounds_done": len(rounds_done), "rounds_budget": config.budget.rounds,
        "cases_done": ledger.cases.count("done"),
        "cases_failed": ledger.cases.count("failed"),
        "last_round_mean_rel_l2": float(last["rel_l2"].mean()) if len(last) else None,
        "latest_model": str(store.model_path(model_name(rounds_done[-1]))) if rounds_done else None,
        "ledger": str(store.ledger_path), "figures": str(store.figures_dir),
        "flow_run_ids": runs, "updated": now_iso(),
        "repairs": (list(previous.get("repairs", [])) + list(repairs or []))[-200:],
        "history": history[-100:],
        "seconds_by_round": previous.get("seconds_by_round", {}) if seconds is None else seconds,
    }


def record_crash(store: CampaignStore, stale: dict[str, Any]) -> dict[str, Any] | None:
    """When a run died holding the campaign (its lock record was left behind, ``stale``) and
    ``campaign.json`` still says ``running``: say ``crashed`` there, with who died, and return it."""
    state = store.read_state()
    if state.get("status") != "running":
        return None
    who = f"pid {stale.get('pid')} on {stale.get('host')}" + (f", flow run {stale['owner']}" if stale.get("owner") else "")
    reason = f"the run ({who}, since {stale.get('started')}) ended without finishing: killed or lost"
    state = {**state, "status": "crashed", "stop_reason": reason, "updated": now_iso(),
             "history": (list(state.get("history", [])) + [{"run": stale.get("owner"), "status": "crashed",
                                                            "reason": reason, "at": now_iso()}])[-100:]}
    store.write_state(state)
    return state
