"""``closedloop serve``: the campaign flow as a scheduled deployment, served by this process."""
from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.utilities.callables import ParameterSchema

from closedloop.flows.campaign import campaign
from closedloop.flows.steer import steer

DEPLOYMENT_NAME = "smoke-nightly"
STEER_DEPLOYMENT_NAME = "steer-on-demand"


class ClosedParameters(ParameterSchema):
    """A flow's parameter schema that names every parameter it takes and no other: with
    ``additionalProperties = false`` the server refuses (HTTP 409, naming it) a run asked with a
    parameter the flow does not have, instead of accepting it and crashing the run."""

    additionalProperties: bool = False


def refuse_unknown_parameters(deployment: RunnerDeployment) -> RunnerDeployment:
    """Close the deployment's parameter schema (Prefect keeps it in a private attribute)."""
    schema = deployment._parameter_openapi_schema
    deployment._parameter_openapi_schema = ClosedParameters(**schema.model_dump(exclude_unset=True),
                                                            additionalProperties=False)
    return deployment


def campaign_deployment(config_path: str = "configs/smoke.toml", cron: str = "0 3 * * *",
                        campaign_dir: str = "runs/scheduled") -> RunnerDeployment:
    """The deployment ``campaign/smoke-nightly``: a cron schedule and default parameters.

    Parameters can be overridden per run (UI, ``run_deployment``, ``prefect deployment run``).
    """
    return refuse_unknown_parameters(campaign.to_deployment(
        name=DEPLOYMENT_NAME, cron=cron,
        parameters={"config_path": config_path, "campaign_dir": campaign_dir},
        description="Closed-loop campaign: simulate, validate, retrain, propose.",
        tags=["closedloop", "campaign"],
    ))


def steer_deployment(campaign_dir: str = "runs/scheduled", concept: str = "inlet_speed") -> RunnerDeployment:
    """The deployment ``steer/steer-on-demand``: no schedule, run on demand on a campaign's latest model."""
    return refuse_unknown_parameters(steer.to_deployment(
        name=STEER_DEPLOYMENT_NAME, parameters={"campaign_dir": campaign_dir, "concept": concept},
        description="Steering experiments chosen by BoTorch on the latest surrogate, validated by simulation.",
        tags=["closedloop", "steer"],
    ))


def serve_deployments(config_path: str = "configs/smoke.toml", cron: str = "0 3 * * *",
                      campaign_dir: str = "runs/scheduled") -> None:
    serve(campaign_deployment(config_path=config_path, cron=cron, campaign_dir=campaign_dir),
          steer_deployment(campaign_dir=campaign_dir))
