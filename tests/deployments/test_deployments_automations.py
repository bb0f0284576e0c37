"""The automation of docs/operations.md against a real Prefect server: a campaign that reaches its error
target emits ``closedloop.campaign.error-target-reached``, and the server's trigger runs the steer
deployment on that campaign's directory (the flow run is created with it as ``campaign_dir``)."""
from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from closedloop.deployments.automations import ERROR_TARGET_EVENT, steer_on_error_target
from tests.conftest import REPO
from tests.deployments.live_server import LiveLab
from tests.flows.crashlab import tiny_config


def test_the_automation_is_an_error_target_trigger_running_steer():
    from uuid import uuid4

    dep = uuid4()
    automation = steer_on_error_target(dep)
    assert automation.trigger.expect == {ERROR_TARGET_EVENT} and automation.trigger.posture == "Reactive"
    (action,) = automation.actions
    assert action.deployment_id == dep and "closedloop.campaign-dir" in action.parameters["campaign_dir"]


def test_error_target_reached_runs_the_steer_deployment(live_lab: LiveLab, tmp_path):
    """On the session's live server (shared with the UI tests; the automation is deleted at the end)."""
    server = live_lab.server
    config = tiny_config(tmp_path, rounds=2)
    config.write_text(config.read_text().replace("error_target = 0.01", "error_target = 10.0"))
    campaign_dir = tmp_path / "camp"
    code = ("from closedloop.deployments.serve import steer_deployment; "
            "from closedloop.deployments.automations import register; "
            "from closedloop.flows.campaign import campaign; "
            f"steer_deployment(campaign_dir='runs/elsewhere').apply(); print('AUTOMATION', register().id); "
            f"state = campaign({str(config)!r}, {str(campaign_dir)!r}); print('STOP', state['stop_reason'])")
    out = subprocess.run([sys.executable, "-c", code], env=server.client_env(), cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}\n{server.tail()}"
    assert "STOP error target reached" in out.stdout  # round 0 already below a target of 10
    (automation,) = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("AUTOMATION ")]
    mine = str(campaign_dir.resolve())
    with httpx.Client(base_url=server.api, timeout=10) as http:
        try:
            steer = http.get("/deployments/name/steer/steer-on-demand").raise_for_status().json()
            # The trigger service reacts to the event stream; the event persister writes the same event to
            # the events table on its own flush interval, so the run can exist before the event is readable.
            deadline, runs, events = time.monotonic() + 60, [], []
            while time.monotonic() < deadline and not (runs and events):
                runs = [r for r in http.post("/flow_runs/filter", json={"flow_runs": {
                    "deployment_id": {"any_": [steer["id"]]}}}).raise_for_status().json()
                    if r["parameters"].get("campaign_dir") == mine]
                events = [e for e in http.post("/events/filter", json={"filter": {"event": {
                    "name": [ERROR_TARGET_EVENT]}}}).raise_for_status().json()["events"]
                    if e["resource"].get("closedloop.campaign-dir") == mine]
                time.sleep(1)
        finally:
            http.delete(f"/automations/{automation}")  # the other tests' campaigns trigger nothing
    assert events, f"no {ERROR_TARGET_EVENT} event for {mine}\n{server.tail()}"
    if not runs:
        pytest.fail(f"no steer run within 60 s of the event\n{server.tail()}")
    (run,) = runs
    assert run["parameters"]["campaign_dir"] == mine  # from the event, not the default
    assert run["state_type"] == "SCHEDULED"  # waiting for `closedloop serve` to pick it up
