"""A campaign against a PostgreSQL-backed Prefect server (``deployments/postgres.sh``).

PostgreSQL (Debian's packages) is started in a temporary cluster by the script, the Prefect server runs
on it through asyncpg, and a small campaign runs with PREFECT_API_URL pointing at that server (the
``live_lab`` fixture, shared with the browser test). The flow run's COMPLETED state is read back both
through the REST API and straight from PostgreSQL's tables.
"""
from __future__ import annotations

import asyncio
import glob
import json
import os
import subprocess

import httpx
import pytest

from tests.deployments.live_server import POSTGRES_SCRIPT, LiveLab, Postgres


@pytest.fixture(scope="module")
def database_url(postgres: Postgres) -> str:
    if postgres.url is None:
        pytest.skip(postgres.why_not)
    return postgres.url


def _query(url: str, sql: str, *args) -> list:
    import asyncpg

    async def fetch():
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_script_refuses_a_directory_postgres_cannot_reach(tmp_path):
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("PostgreSQL is not installed")
    if os.geteuid() != 0:
        pytest.skip("only root hands the cluster to the postgres user")
    # pytest's tmp_path is private to root: the script must say so rather than fail inside initdb
    private = tmp_path / "pg"
    out = subprocess.run(["bash", str(POSTGRES_SCRIPT), "start"], capture_output=True, text=True, timeout=60,
                         env={"CLOSEDLOOP_PG_DIR": str(private), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert f"{private} is not writable by the cluster owner (postgres)" in out.stderr
    assert not (private / "data").exists()


def test_script_binds_loopback_with_password(database_url: str):
    assert database_url.startswith("postgresql+asyncpg://prefect:") and "@127.0.0.1:" in database_url
    rows = _query(database_url, "SELECT current_setting('listen_addresses') AS listen, "
                                "current_setting('password_encryption') AS enc")
    assert rows[0]["listen"] == "127.0.0.1" and rows[0]["enc"] == "scram-sha-256"
    wrong = database_url.replace("prefect:", "prefect:wrong", 1)
    with pytest.raises(Exception, match="password authentication failed"):
        _query(wrong, "SELECT 1")


def test_campaign_completes_on_postgres_backed_server(database_url: str, live_lab: LiveLab):
    assert live_lab.database_url == database_url
    run = live_lab.run
    assert run["state_type"] == "COMPLETED", live_lab.server.tail()
    # the state lives in PostgreSQL, not in an SQLite file beside the server
    rows = _query(database_url, "SELECT state_type::text AS state, parameters FROM flow_run WHERE id = $1::uuid",
                  run["id"])
    assert [r["state"] for r in rows] == ["COMPLETED"]
    assert json.loads(rows[0]["parameters"])["campaign_dir"] == str(live_lab.campaign_dir)
    assert not list(live_lab.server.home.rglob("*.db"))
    tasks = _query(database_url, "SELECT name, state_type::text AS state FROM task_run WHERE flow_run_id = $1::uuid",
                   run["id"])
    assert sum(t["name"].startswith("simulate-case") for t in tasks) == 2
    assert {t["state"] for t in tasks} == {"COMPLETED"}
    # the REST API agrees: one finished campaign run (the deployment's own run is only scheduled)
    with httpx.Client(base_url=live_lab.server.api, timeout=10) as http:
        runs = http.post("/flow_runs/filter", json={"flows": {"name": {"any_": ["campaign"]}}}).json()
    # (other tests share this server: only this campaign's runs count)
    runs = [r for r in runs if r["parameters"].get("campaign_dir") == str(live_lab.campaign_dir)]
    assert sorted(r["state_type"] for r in runs if r["deployment_id"] is None) == ["COMPLETED"]
    ledger = live_lab.ledger
    assert len(ledger) == 2 and set(ledger["status"]) == {"done"} and set(ledger["round"]) == {0}
    assert ledger["rel_l2"].notna().all()  # each case predicted before it was trained on
