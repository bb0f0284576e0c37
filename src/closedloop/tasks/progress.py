"""What a running campaign tells Prefect: a progress artifact, a summary artifact, and events.

- ``NAME-DIGEST-progress`` (progress artifact): cases done / budget, in percent, updated as cases
  finish (lab/campaign/progress.py says what the budget is);
- ``NAME-DIGEST-summary`` (markdown): cases, spend and the newest round's mean and worst validation
  error, a new version each update;
- events (``prefect.events.emit_event``) for the lab's milestones, :data:`EVENTS`; the resource is
  the campaign (``closedloop.campaign.NAME-DIGEST``, with its name and directory as labels), the
  related resources the case (role ``case``) or checkpoint (role ``checkpoint``) it concerns. Prefect
  relates each to the flow run it came from. docs/operations.md has an automation that reacts to one.

A campaign is never stopped by Prefect being unreachable: each call logs a warning and goes on.
"""
from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event

from closedloop.lab.campaign.progress import campaign_progress, progress_markdown
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.tasks.campaign import run_logger

EVENTS = {
    "closedloop.case.done": "a case is simulated and recorded (payload: sim_seconds, round)",
    "closedloop.case.failed": "a case failed every attempt (payload: error)",
    "closedloop.checkpoint.written": "a round's training ended and its checkpoint is stored (payload: round, cases)",
    "closedloop.campaign.error-target-reached": "an error target held (payload: reason)",
    "closedloop.campaign.stopped": "the campaign stopped proposing or ended (payload: reason)",
}


def campaign_resource(config: CampaignConfig, store: CampaignStore) -> dict[str, str]:
    """The campaign as a Prefect event resource: its artifact-key identity, name and directory."""
    return {"prefect.resource.id": f"closedloop.campaign.{store.artifact_key(config.name)}",
            "prefect.resource.name": config.name, "closedloop.campaign-dir": str(store.root.resolve()),
            "closedloop.mode": config.campaign.mode}


def milestone(config: CampaignConfig, campaign_dir: str, event: str, *, case_id: str | None = None,
              checkpoint: str | None = None, **payload: Any) -> None:
    """Emit one of :data:`EVENTS` about the campaign (and the case or checkpoint it concerns)."""
    if event not in EVENTS:
        raise ValueError(f"event: {event!r} is not one of {sorted(EVENTS)}")
    store = CampaignStore(campaign_dir, create=False)
    related = []
    if case_id:
        related.append({"prefect.resource.id": f"closedloop.case.{case_id}", "prefect.resource.role": "case"})
    if checkpoint:
        related.append({"prefect.resource.id": f"closedloop.checkpoint.{store.artifact_key(config.name, checkpoint)}",
                        "prefect.resource.role": "checkpoint"})
    try:
        emit_event(event=event, resource=campaign_resource(config, store), related=related or None,
                   payload={k: v for k, v in payload.items() if v is not None})
    except Exception as err:
        run_logger().warning("event %s not emitted: %s", event, err)


def outcome_events(config: CampaignConfig, campaign_dir: str, rows: list[dict[str, Any]]) -> None:
    """``case.done`` / ``case.failed`` for recorded simulation outcomes (ledger rows)."""
    for row in rows:
        if row.get("status") == "failed":
            milestone(config, campaign_dir, "closedloop.case.failed", case_id=row["case_id"], error=row.get("error"))
        else:
            milestone(config, campaign_dir, "closedloop.case.done", case_id=row["case_id"],
                      sim_seconds=row.get("sim_seconds"), reused=row.get("reused"))


def stop_events(config: CampaignConfig, campaign_dir: str, reason: str | None) -> None:
    """``error-target-reached`` when the reason is an error target, then ``campaign.stopped``."""
    if reason and ("error target" in reason or "accuracy target" in reason):
        milestone(config, campaign_dir, "closedloop.campaign.error-target-reached", reason=reason)
    milestone(config, campaign_dir, "closedloop.campaign.stopped", reason=reason or "finished")


class ProgressArtifacts:
    """The campaign's progress and summary artifacts for one flow run (created on first update)."""

    def __init__(self, config: CampaignConfig, campaign_dir: str):
        self.config = config
        self.store = CampaignStore(campaign_dir, create=False)
        self.progress_id: UUID | None = None

    def update(self, rounds_done: int) -> dict[str, Any] | None:
        """Publish the progress from the ledger now; returns it (None if Prefect refused)."""
        p = campaign_progress(self.config, self.store.read_ledger(), rounds_done)
        name = self.config.name
        try:
            percent = 100 * p.fraction
            if self.progress_id is None:
                self.progress_id = create_progress_artifact(
                    percent, key=self.store.artifact_key(name, "progress"),
                    description=f"Campaign {name}: cases done / budget")
            else:
                update_progress_artifact(self.progress_id, percent)
            create_markdown_artifact(markdown=progress_markdown(self.config, p),
                                     key=self.store.artifact_key(name, "summary"),
                                     description=f"Campaign {name}: cases, spend, current validation error")
        except Exception as err:
            run_logger().warning("progress artifact not updated: %s", err)
            return None
        return p.as_dict()

