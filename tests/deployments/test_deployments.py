"""The served deployment and prefect.yaml declare the same, valid campaign deployment."""
from __future__ import annotations


import yaml
from prefect.flows import load_flow_from_entrypoint

from closedloop.deployments.serve import DEPLOYMENT_NAME, campaign_deployment
from closedloop.flows.campaign import campaign
from tests.conftest import REPO


def test_served_deployment_has_schedule_and_valid_parameters():
    dep = campaign_deployment(cron="15 2 * * *")
    assert dep.name == DEPLOYMENT_NAME and dep.flow_name == "campaign"
    (schedule,) = dep.schedules
    assert schedule.schedule.cron == "15 2 * * *"
    # defaults must validate against the flow's signature and point at a real config
    campaign.validate_parameters(dep.parameters)
    assert (REPO / dep.parameters["config_path"]).is_file()


def test_prefect_yaml_matches_served_deployment():
    spec = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    dep = next(d for d in spec["deployments"] if d["name"] == DEPLOYMENT_NAME)
    served = campaign_deployment()
    assert dep["name"] == served.name
    assert dep["parameters"] == served.parameters
    assert dep["schedules"][0]["cron"] == served.schedules[0].schedule.cron
    flow = load_flow_from_entrypoint(str(REPO / dep["entrypoint"]))
    assert flow.name == "campaign"
    flow.validate_parameters(dep["parameters"])


def test_flow_rejects_badly_typed_parameters():
    import pytest
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError):
        campaign.validate_parameters({"config_path": "configs/smoke.toml", "rounds": "many"})
