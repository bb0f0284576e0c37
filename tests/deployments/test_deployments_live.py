"""The served deployment, triggered for real: a Prefect server and ``serve`` in subprocesses.

One Prefect server (127.0.0.1, a free port, its own PREFECT_HOME, an API auth string) and one
process serving ``campaign/smoke-nightly`` (as ``closedloop serve`` does) are started for the
module. Runs are triggered through ``run_deployment`` and through the REST API with plain HTTP.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from closedloop.deployments.serve import DEPLOYMENT_NAME
from tests.conftest import REPO, fast_config_text
from tests.deployments.live_server import free_port, stop

PREFECT = Path(sys.executable).with_name("prefect")
AUTH = "closedloop:test-secret"
DEPLOYMENT = f"campaign/{DEPLOYMENT_NAME}"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Live:
    api: str
    tmp: Path
    config: Path
    serve: subprocess.Popen
    logs: dict[str, Path]

    def http(self, auth: str | None = AUTH) -> httpx.Client:
        headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=10)

    def tail(self) -> str:
        return "\n".join(f"--- {name} ---\n" + path.read_text()[-3000:] for name, path in self.logs.items())


def _wait_for(check, timeout: float, what: str, live_procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in live_procs:
            if proc.poll() is not None:
                return pytest.fail(f"{what}: a subprocess exited early ({proc.args[:3]}, rc={proc.returncode})")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(what)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Live:
    tmp = tmp_path_factory.mktemp("live")
    config = tmp / "fast.toml"
    config.write_text(fast_config_text(rounds="1", initial_cases="2"))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base_env.update(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                    PREFECT_LOGGING_LEVEL="WARNING", CLOSEDLOOP_FLOW_CACHE="off")
    server_env = dict(base_env, PREFECT_SERVER_API_AUTH_STRING=AUTH, PREFECT_SERVER_UI_ENABLED="false")
    client_env = dict(base_env, PREFECT_API_URL=api, PREFECT_API_AUTH_STRING=AUTH, PREFECT_RUNNER_POLL_FREQUENCY="1")
    logs = {"server": tmp / "server.log", "serve": tmp / "serve.log"}
    procs: list[subprocess.Popen] = []
    try:
        with logs["server"].open("w") as out:
            procs.append(subprocess.Popen([str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                          env=server_env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        try:
            _wait_for(lambda: httpx.get(f"{api}/health", timeout=1).status_code == 200, 60, "server health", procs)
        except TimeoutError:
            pytest.skip("the Prefect server did not start within 60 s:\n" + logs["server"].read_text()[-2000:])
        serve_code = ("from closedloop.deployments.serve import serve_deployments; "
                      f"serve_deployments(config_path={str(config)!r}, campaign_dir={str(tmp / 'scheduled')!r})")
        with logs["serve"].open("w") as out:
            procs.append(subprocess.Popen([sys.executable, "-c", serve_code], env=client_env, cwd=REPO,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        result = Live(api, tmp, config, procs[1], logs)
        with result.http() as http:
            _wait_for(lambda: http.get(f"/deployments/name/{DEPLOYMENT}").status_code == 200, 60,
                      "served deployment registered", procs)
        yield result
    finally:
        for proc in reversed(procs):
            stop(proc)


@pytest.fixture
def api_client_settings(live: Live):
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: live.api, PREFECT_API_AUTH_STRING: AUTH}):
        yield


def _request(http: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    """One request, retried like Prefect's own client on 429/502/503 (SQLite busy under concurrent writes)."""
    for attempt in range(8):
        response = http.request(method, url, **kwargs)
        if response.status_code not in (429, 502, 503):
            return response
        time.sleep(0.5 * (attempt + 1))
    return response


def _rest_trigger(live: Live, parameters: dict) -> httpx.Response:
    with live.http() as http:
        dep = _request(http, "GET", f"/deployments/name/{DEPLOYMENT}")
        dep.raise_for_status()
        return _request(http, "POST", f"/deployments/{dep.json()['id']}/create_flow_run",
                        json={"parameters": parameters})


def _rest_wait(live: Live, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    with live.http() as http:
        while time.monotonic() < deadline:
            response = _request(http, "GET", f"/flow_runs/{run_id}")
            response.raise_for_status()
            run = response.json()
            if run["state_type"] in TERMINAL:
                return run
            assert live.serve.poll() is None, "the serving process died\n" + live.tail()
            time.sleep(1)
    raise AssertionError(f"flow run {run_id} did not finish in {timeout} s\n" + live.tail())


def test_server_binds_loopback_by_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", "import prefect.settings as s; print(s.PREFECT_SERVER_API_HOST.value())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "127.0.0.1"
    assert "--host 127.0.0.1" in (REPO / "deployments" / "ui.sh").read_text()


def test_api_auth_string_rejects_unauthenticated_requests(live: Live):
    for auth in (None, "closedloop:wrong"):
        with live.http(auth) as http:
            assert http.get(f"/deployments/name/{DEPLOYMENT}").status_code == 401
    with live.http() as http:
        assert http.get(f"/deployments/name/{DEPLOYMENT}").status_code == 200


def test_runs_triggered_by_rest_and_by_run_deployment_complete(live: Live, api_client_settings):
    """The two ways to trigger the served deployment, at once (the serving process runs both)."""
    from closedloop.deployments.trigger import trigger

    via_rest = live.tmp / "via-rest"
    response = _rest_trigger(live, {"rounds": 1, "campaign_dir": str(via_rest)})
    assert response.status_code == 201, response.text

    out = live.tmp / "via-run-deployment"
    run = trigger(rounds=1, campaign_dir=str(out), timeout=120)
    assert run.state is not None and run.state.is_completed(), f"{run.state}\n" + live.tail()
    ledger = pd.read_parquet(out / "ledger.parquet")
    assert set(ledger["round"]) == {0} and set(ledger["status"]) == {"done"}
    assert set(ledger["flow_run_id"]) == {str(run.id)}

    rest = _rest_wait(live, response.json()["id"])
    assert rest["state_type"] == "COMPLETED", rest["state"]
    assert rest["parameters"]["config_path"] == str(live.config)  # the deployment's default
    ledger = pd.read_parquet(via_rest / "ledger.parquet")
    assert len(ledger) > 0 and set(ledger["status"]) == {"done"}
    assert set(ledger["flow_run_id"]) == {rest["id"]}


def test_bad_parameters_fail_clearly_and_serving_goes_on(live: Live, api_client_settings):
    from prefect.deployments import run_deployment
    from prefect.exceptions import PrefectHTTPStatusError

    # a badly typed parameter is refused by the server against the flow's schema: no run at all
    response = _rest_trigger(live, {"rounds": "many"})
    assert response.status_code == 409, response.text
    assert "Validation failed for field 'rounds'" in response.json()["detail"]
    with pytest.raises(PrefectHTTPStatusError, match="rounds"):
        run_deployment(DEPLOYMENT, parameters={"rounds": "many"}, timeout=30, poll_interval=1)

    # well typed but invalid values: the runs themselves fail (both at once), and their states say why
    missing = live.tmp / "no-such.toml"
    bad = {"missing config": {"config_path": str(missing), "campaign_dir": str(live.tmp / "x")},
           "zero rounds": {"rounds": 0, "campaign_dir": str(live.tmp / "y")}}
    ids = {}
    for name, parameters in bad.items():
        response = _rest_trigger(live, parameters)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    runs = {name: _rest_wait(live, run_id) for name, run_id in ids.items()}
    assert {run["state_type"] for run in runs.values()} == {"FAILED"}, live.tail()
    assert f"{missing}: config file not found" in runs["missing config"]["state"]["message"]
    message = runs["zero rounds"]["state"]["message"]
    assert "rounds" in message and "greater than or equal to 1" in message

    # the serving process survived all of it and still runs a good one (a finished campaign when an
    # earlier test left one, so that only the run's overhead is paid)
    assert live.serve.poll() is None, live.tail()
    out = live.tmp / "via-rest"
    if not (out / "ledger.parquet").is_file():
        out = live.tmp / "after-bad"
    good = _rest_trigger(live, {"rounds": 1, "campaign_dir": str(out)})
    assert good.status_code == 201, good.text
    assert _rest_wait(live, good.json()["id"])["state_type"] == "COMPLETED", live.tail()
