"""A run asked with a parameter the flow does not have is refused by the server, naming it."""
from __future__ import annotations

import pytest
from prefect import get_client
from prefect.exceptions import PrefectHTTPStatusError

from closedloop.deployments.serve import campaign_deployment, steer_deployment

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.mark.parametrize("make, known, unknown", [
    (campaign_deployment, {"rounds": 3}, {"roundz": 3}),
    (steer_deployment, {"concept": "source_x"}, {"concepts": "source_x"}),
])
def test_unknown_parameters_are_refused_at_the_api(make, known, unknown):
    deployment_id = make().apply()
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters=known)
        assert run.parameters[next(iter(known))] == next(iter(known.values()))
        with pytest.raises(PrefectHTTPStatusError, match="409") as refused:
            client.create_flow_run_from_deployment(deployment_id, parameters=unknown)
        assert f"'{next(iter(unknown))}' was unexpected" in refused.value.response.text
        with pytest.raises(PrefectHTTPStatusError, match="409"):  # badly typed: refused as before
            client.create_flow_run_from_deployment(deployment_id, parameters={"seed" if make is steer_deployment
                                                                              else "rounds": "many"})


def test_the_mode_is_a_parameter_of_the_campaign_deployment():
    deployment_id = campaign_deployment().apply()
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters={"mode": "async"})
        assert run.parameters["mode"] == "async"
        with pytest.raises(PrefectHTTPStatusError, match="409") as refused:  # neither sync nor async
            client.create_flow_run_from_deployment(deployment_id, parameters={"mode": "fast"})
        assert "mode" in refused.value.response.text
