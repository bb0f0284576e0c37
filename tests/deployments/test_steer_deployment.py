"""The steer deployment: served next to the campaign one, declared identically in prefect.yaml."""
from __future__ import annotations

import pytest
import yaml
from prefect.exceptions import ParameterTypeError
from prefect.flows import load_flow_from_entrypoint

from closedloop.deployments.serve import STEER_DEPLOYMENT_NAME, steer_deployment
from closedloop.flows.steer import steer
from tests.conftest import REPO


def test_steer_deployment_is_on_demand_and_matches_prefect_yaml():
    served = steer_deployment()
    assert served.name == STEER_DEPLOYMENT_NAME and served.flow_name == "steer" and not served.schedules
    steer.validate_parameters(served.parameters)
    spec = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    dep = next(d for d in spec["deployments"] if d["name"] == STEER_DEPLOYMENT_NAME)
    assert dep["parameters"] == served.parameters and "schedules" not in dep
    flow = load_flow_from_entrypoint(str(REPO / dep["entrypoint"]))
    assert flow.name == "steer"
    flow.validate_parameters(dep["parameters"])
    with pytest.raises(ParameterTypeError):
        steer.validate_parameters({"campaign_dir": "runs/x", "rounds": "many"})
