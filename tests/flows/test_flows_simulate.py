"""Reference simulations fanned out on Dask (prefect-dask's DaskTaskRunner)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from closedloop.flows.campaign import campaign
from closedloop.lab import faults
from tests.conftest import fast_config_text

pytestmark = pytest.mark.usefixtures("prefect_harness")


def dask_config(tmp_path: Path, **simulation: str) -> Path:
    text = fast_config_text()
    extra = "".join(f"{key} = {value}\n" for key, value in {"runner": '"dask"', **simulation}.items())
    text, n = re.subn(r"(?m)^\[simulation\]\n", "[simulation]\n" + extra, text)
    assert n == 1
    path = tmp_path / "dask.toml"
    path.write_text(text)
    return path


def simulated_by(log: Path) -> dict[str, int]:
    """case id -> pid of the process that simulated it (from the fault log, which workers inherit)."""
    return {detail: int(pid) for pid, name, detail in (line.split() for line in log.read_text().splitlines())
            if name == "simulate:end"}


def test_round_on_local_dask_cluster_runs_in_worker_processes(tmp_path: Path, monkeypatch):
    log = tmp_path / "events.log"
    monkeypatch.setenv(faults.ENV_LOG, str(log))  # inherited by the cluster's worker processes
    out = tmp_path / "camp"
    state = campaign(str(dask_config(tmp_path, dask_workers="2")), str(out), rounds=1)
    assert state["status"] == "finished" and state["rounds_done"] == 1

    ledger = pd.read_parquet(out / "ledger.parquet")
    assert len(ledger) == 4 and set(ledger["status"]) == {"done"} and ledger["rel_l2"].notna().all()
    assert {p.stem for p in (out / "cases").glob("*.parquet")} == set(ledger["case_id"])
    # the ledger names the campaign's flow run, not the simulate-batch subflow
    assert ledger["flow_run_id"].nunique() == 1 and len(state["flow_run_ids"]) == 1
    pids = simulated_by(log)
    assert set(pids) == set(ledger["case_id"])
    assert os.getpid() not in pids.values() and len(set(pids.values())) >= 2


def test_a_batch_on_an_existing_dask_scheduler(tmp_path: Path, monkeypatch):
    """With ``dask_address`` the batch runs on that scheduler's workers (the campaign around it is the
    local-cluster test's; here only the simulate step, to keep the suite short)."""
    from distributed import Client, LocalCluster

    from closedloop.flows.simulate import simulate
    from closedloop.lab import campaign as steps
    from closedloop.lab.config import load_campaign_config
    from closedloop.lab.store import CampaignStore

    log = tmp_path / "events.log"
    monkeypatch.setenv(faults.ENV_LOG, str(log))
    with LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        workers = set(client.run(os.getpid).values())
        config = load_campaign_config(dask_config(tmp_path, dask_address=f'"{cluster.scheduler_address}"'))
        x, _ = steps.feasible_sobol(config, 2, 0)
        store = CampaignStore(tmp_path / "camp")
        rows = simulate(config, str(store.root), config.design.space().as_dicts(x))
    assert [r["status"] for r in rows] == ["done", "done"]
    assert {p.stem for p in store.cases_dir.glob("*.parquet")} == {r["case_id"] for r in rows}
    assert set(simulated_by(log)) == {r["case_id"] for r in rows} and set(simulated_by(log).values()) <= workers


def test_dask_address_needs_dask_runner(tmp_path: Path):
    from closedloop.lab.config import ConfigError

    cfg = dask_config(tmp_path, dask_address='"tcp://127.0.0.1:8786"')
    cfg.write_text(cfg.read_text().replace('runner = "dask"', 'runner = "threads"'))
    with pytest.raises(ConfigError, match=r"simulation: dask_address: .*only used with runner = \"dask\""):
        campaign.fn(str(cfg), str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()
