"""Automations on the lab's events (tasks/progress.py): when a campaign reaches its error target, run the
steer deployment on that campaign's directory.

    trigger: closedloop.campaign.error-target-reached, any campaign resource (closedloop.campaign.*)
    action:  run steer/steer-on-demand with campaign_dir = the event resource's closedloop.campaign-dir

Register it once against the server that ``closedloop serve`` talks to::

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m closedloop.deployments.automations

The server's trigger and action services fire it; the flow run it creates is executed by whatever
serves the steer deployment (``closedloop serve``, or a worker of ``deployments/prefect.yaml``).
"""
from __future__ import annotations

import argparse
from uuid import UUID

from prefect import get_client
from prefect.automations import Automation, EventTrigger, Posture, RunDeployment

from closedloop.deployments.serve import STEER_DEPLOYMENT_NAME

AUTOMATION_NAME = "steer-when-accurate"
ERROR_TARGET_EVENT = "closedloop.campaign.error-target-reached"


def steer_on_error_target(steer_deployment_id: UUID, name: str = AUTOMATION_NAME) -> Automation:
    """The automation (not yet registered: call ``.create()``): error target reached → steer that campaign."""
    return Automation(
        name=name, description="When a campaign reaches its error target, run steering experiments on its model.",
        trigger=EventTrigger(expect={ERROR_TARGET_EVENT}, match={"prefect.resource.id": "closedloop.campaign.*"},
                             posture=Posture.Reactive, threshold=1, within=0),
        actions=[RunDeployment(source="selected", deployment_id=steer_deployment_id,
                               parameters={"campaign_dir": "{{ event.resource['closedloop.campaign-dir'] }}"})])


def register(deployment: str = f"steer/{STEER_DEPLOYMENT_NAME}") -> Automation:
    """Create the automation on the current server for the named steer deployment (which must exist)."""
    with get_client(sync_client=True) as client:
        target = client.read_deployment_by_name(deployment)
    return steer_on_error_target(target.id).create()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployment", default=f"steer/{STEER_DEPLOYMENT_NAME}")
    created = register(parser.parse_args().deployment)
    print(f"automation {created.name} ({created.id}): {ERROR_TARGET_EVENT} -> run {parser.parse_args().deployment}")


if __name__ == "__main__":
    main()
