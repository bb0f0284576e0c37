"""``closedloop serve``: the campaign flow as a scheduled deployment, served by this process."""
from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from closedloop.flows.campaign import campaign
from closedloop.flows.steer import steer

DEPLOYMENT_NAME = "smoke-nightly"
STEER_DEPLOYMENT_NAME = "steer-on-demand"


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


def steer_deployment(campaign_dir: str = "runs/scheduled", concept: str = "inlet_speed") -> RunnerDeployment:
    """The deployment ``steer/steer-on-demand``: no schedule, run on demand on a campaign's latest model."""
    return steer.to_deployment(
        name=STEER_DEPLOYMENT_NAME, parameters={"campaign_dir": campaign_dir, "concept": concept},
        description="Steering experiments chosen by BoTorch on the latest surrogate, validated by simulation.",
        tags=["closedloop", "steer"],
    )


def serve_deployments(config_path: str = "configs/smoke.toml", cron: str = "0 3 * * *",
                      campaign_dir: str = "runs/scheduled") -> None:
    serve(campaign_deployment(config_path=config_path, cron=cron, campaign_dir=campaign_dir),
          steer_deployment(campaign_dir=campaign_dir))
