"""A campaign whose reference is an external program (``simulator = "command"``): it completes, trains on the
program's cases, keeps each case's log, records the simulator and its CPU seconds, retries a transient
failure and records a program that always fails as ``failed`` with its log's tail; nothing else is lost."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from closedloop.flows.campaign import campaign
from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import CampaignStore
from tests.conftest import fast_config_text

pytestmark = pytest.mark.usefixtures("prefect_harness")
FAKE = Path(__file__).resolve().parents[1] / "simulators" / "fake_external_code.py"
REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"


def command_config(tmp_path: Path, mode: str, retries: int = 1) -> Path:
    text = fast_config_text(retries=str(retries)).replace("[simulation]\n", '[simulation]\nsimulator = "command"\n', 1)
    text = text.replace("initial_cases = 4", "initial_cases = 3")
    text += (f'retry_delay_seconds = 0.1\n\n[simulation.command]\ncommand = ["{sys.executable}", "{FAKE}"]\n'
             f'version = "fake 1.0"\n[simulation.command.env]\nFAKE_MODE = "{mode}"\nPYTHONPATH = "{SRC}"\n'
             f'FAKE_STATE = "{tmp_path / "flaky.marker"}"\nCLOSEDLOOP_FLOW_CACHE = "off"\n')
    path = tmp_path / f"{mode}.toml"
    path.write_text(text)
    return path


def test_a_command_campaign_trains_on_the_programs_cases(tmp_path: Path):
    cfg = command_config(tmp_path, "flaky")  # the first simulation fails once, then every one works
    out = tmp_path / "camp"
    state = campaign(str(cfg), str(out), rounds=1)
    assert state["rounds_done"] == 1 and state["cases_done"] == 3
    ledger = pd.read_parquet(out / "ledger.parquet")
    assert (ledger["status"] == "done").all() and (ledger["simulator"] == "command").all()
    assert (ledger["cpu_seconds"] > 0.1).all()  # the program's own CPU (it imports torch and solves)
    config = load_campaign_config(cfg)
    ids = {config.scenario.with_parameters(config.design.scenario_values(json.loads(p))).case_id(
        config.simulation.producer()) for p in ledger["parameters"]}
    assert ids == set(ledger["case_id"])
    plain = {config.scenario.with_parameters(config.design.scenario_values(json.loads(p))).case_id()
             for p in ledger["parameters"]}
    assert not plain & ids  # a command case is not the built-in case of the same scenario
    store = CampaignStore(out)
    for cid in ledger["case_id"]:
        assert (out / "runs" / cid / "log.txt").is_file()
        prov = store.case_metadata(cid)["provenance"]
        assert prov["simulator"] == "command" and prov["simulator_version"] == "fake 1.0"
    logs = "".join((out / "runs" / cid / "log.txt").read_text() for cid in ledger["case_id"])
    assert logs.count("transient failure") == 1  # one attempt failed and was retried
    assert (out / "models" / "round_000.pt").is_file()


def test_a_program_that_always_fails_is_recorded_failed_with_its_log(tmp_path: Path):
    cfg = command_config(tmp_path, "exit", retries=1)
    out = tmp_path / "camp"
    with pytest.raises(Exception):
        campaign(str(cfg), str(out), rounds=1)  # no case to train on: the round fails, and says why
    ledger = pd.read_parquet(out / "ledger.parquet")
    assert (ledger["status"] == "failed").all() and len(ledger) == 3
    for _, row in ledger.iterrows():
        assert "exit code 3" in row["error"] and "solver diverged at step 17" in row["error"]
        assert "(failed 2 attempts)" in row["error"]
        assert (out / "runs" / row["case_id"] / "log.txt").read_text().count("$ ") == 2  # both attempts logged
    assert not list((out / "cases").glob("*.parquet"))


@pytest.mark.skipif(shutil.which("blockMesh") is None or shutil.which("scalarTransportFoam") is None,
                    reason="OpenFOAM is not installed (on Debian: apt-get install openfoam, as .ci/run does)")
def test_an_openfoam_campaign_runs_from_the_cli_and_trains_on_its_cases(tmp_path: Path):
    """configs/openfoam.toml, one round of 3 cases: OpenFOAM's cases, its provenance, a trained checkpoint."""
    from typer.testing import CliRunner

    from closedloop.cli import app

    text = (REPO / "configs" / "openfoam.toml").read_text()
    text = text.replace('scenario = "scenarios/room.toml"', f'scenario = "{REPO / "configs/scenarios/room.toml"}"')
    text = text.replace("initial_cases = 4", "initial_cases = 3").replace("\nepochs = 20", "\nepochs = 6")
    text = text.replace("physics_stage_epochs = 10", "physics_stage_epochs = 2")
    cfg = tmp_path / "of.toml"
    cfg.write_text(text)
    out = tmp_path / "camp"
    result = CliRunner().invoke(app, ["campaign", "run", str(cfg), "--dir", str(out), "--rounds", "1"])
    assert result.exit_code == 0, result.output
    ledger = pd.read_parquet(out / "ledger.parquet")
    assert len(ledger) == 3 and (ledger["status"] == "done").all() and (ledger["simulator"] == "openfoam").all()
    store = CampaignStore(out)
    for cid in ledger["case_id"]:
        prov = store.case_metadata(cid)["provenance"]
        assert prov["simulator_version"].startswith("OpenFOAM v")
        assert prov["simulator_identity"]["simulator"] == "openfoam"
        assert (out / "runs" / cid / "transport").is_dir()  # the OpenFOAM case, with its logs, kept with the case
        case = store.read_case(cid)
        budget = case.budget
        assert float((budget["mass_emitted"] - budget["mass_in_domain"] - budget["mass_exhausted"]).abs().max()) < 1e-6
    assert (out / "models" / "round_000.pt").is_file()
