"""``closedloop serve``: the campaign flow as a scheduled deployment, served by this process."""
from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from closedloop.flows.campaign import campaign

DEPLOYMENT_NAME = "smoke-nightly"


def campaign_deployment(config_path: str = "configs/smoke.toml", cron: str = "0 3 * * *",
                        campaign_dir: str = "runs/scheduled") -> RunnerDeployment:
    """The deployment ``campaign/smoke-nightly``: a cron schedule and default parameters.

    Parameters can be overridden per run (UI, ``run_deployment``, ``prefect deployment run``).
    """
    return campaign.to_deployment(
        name=DEPLOYMENT_NAME, cron=cron,
        parameters={"config_path": config_path, "campaign_dir": campaign_dir},
        description="Closed-loop campaign: simulate, validate, retrain, propose.",
        tags=["closedloop", "campaign"],
    )


def serve_deployments(config_path: str = "configs/smoke.toml", cron: str = "0 3 * * *",
                      campaign_dir: str = "runs/scheduled") -> None:
    serve(campaign_deployment(config_path=config_path, cron=cron, campaign_dir=campaign_dir))
