"""One live lab for the PostgreSQL and browser tests: a Prefect server (with its UI) on PostgreSQL when
PostgreSQL can be started, else on the embedded SQLite, that has run a small campaign and holds the
scheduled deployment. Shared so that the campaign runs once for both test modules.
"""
from __future__ import annotations

import glob
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.deployments.live_server import POSTGRES_SCRIPT, LiveLab, Postgres, Server, prefect_server
from tests.flows.crashlab import tiny_config


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway cluster started by deployments/postgres.sh (under /tmp: the postgres user must reach it)."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        yield Postgres(None, "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb missing); "
                             "`apt-get install -y postgresql` as .ci/run does")
        return
    cluster = Path(tempfile.mkdtemp(prefix="closedloop-pg-", dir="/tmp"))
    env = {"CLOSEDLOOP_PG_DIR": str(cluster), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    try:
        start = subprocess.run(["bash", str(POSTGRES_SCRIPT), "start"], env=env, capture_output=True, text=True,
                               timeout=120)
        if start.returncode == 0:
            yield Postgres(start.stdout.strip().splitlines()[-1])
        else:
            yield Postgres(None, "deployments/postgres.sh could not start PostgreSQL: " + start.stderr.strip()[-1500:])
    finally:
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(cluster, ignore_errors=True)


def _run_campaign_and_deploy(server: Server, config: Path, campaign_dir: Path) -> None:
    """The campaign flow against the server, then its scheduled deployment registered (as ``serve`` does)."""
    code = ("from closedloop.flows.campaign import campaign; "
            "from closedloop.deployments.serve import campaign_deployment; "
            f"campaign(config_path={str(config)!r}, campaign_dir={str(campaign_dir)!r}); "
            f"campaign_deployment(config_path={str(config)!r}, campaign_dir={str(campaign_dir)!r}).apply()")
    out = subprocess.run([sys.executable, "-c", code], env=server.client_env(), cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}\n{server.tail()}"


@pytest.fixture(scope="session")
def live_lab(postgres: Postgres, tmp_path_factory) -> Iterator[LiveLab]:
    tmp = tmp_path_factory.mktemp("live-lab")
    # the crash tests' tiny campaign (40 s horizon, small model) cut to 2 cases and 2 epochs
    config = tiny_config(tmp, rounds=1)
    text = config.read_text().replace("initial_cases = 3", "initial_cases = 2")
    config.write_text(re.sub(r"(?m)^epochs = \d+$", "epochs = 2", text))
    campaign_dir = tmp / "campaign"
    with prefect_server(tmp, database_url=postgres.url, ui=True, timeout=120) as server:
        _run_campaign_and_deploy(server, config, campaign_dir)
        ledger = pd.read_parquet(campaign_dir / "ledger.parquet")
        (run_id,) = set(ledger["flow_run_id"])
        with httpx.Client(base_url=server.api, timeout=10) as http:
            run = http.get(f"/flow_runs/{run_id}").raise_for_status().json()
            deployment = http.get("/deployments/name/campaign/smoke-nightly").raise_for_status().json()
            found = http.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}})
            # by type ("table", "markdown": the round's report, "progress"); the progress summary as "summary"
            artifacts = {"summary" if a["key"].endswith("-summary") else a["type"]: a
                         for a in found.raise_for_status().json()}
        yield LiveLab(server, postgres.url, config, campaign_dir, ledger, run, deployment, artifacts)
