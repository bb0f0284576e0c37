"""`closedloop steer` on a tiny campaign: it runs the steer flow, prints a table and writes files."""
from __future__ import annotations

from pathlib import Path

import inspect

import pandas as pd
import pytest
from typer.testing import CliRunner

from closedloop.cli import app
from closedloop.cli.steer import steer as steer_command
from closedloop.flows.steer import steer as steer_flow
from closedloop.lab.steering import SteeringConfig
from tests.lab.steering_campaign import make_campaign

runner = CliRunner()


@pytest.mark.usefixtures("prefect_harness")
def test_cli_steer_runs_and_reports(tmp_path: Path):
    camp = make_campaign(tmp_path)
    result = runner.invoke(app, ["steer", str(camp), "--concept", "inlet_speed", "--base-cases", "1",
                                 "--initial", "4", "--rounds", "0", "--layer", "closure.candidate",
                                 "--layer", "closure.head"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "inlet_speed_high" in text and "distance steered" in text
    table = pd.read_parquet(camp / "steering" / "experiments.parquet")
    assert len(table) == 4 and set(table["layer"]) <= {"closure.candidate", "closure.head"}
    assert table["flow_run_id"].notna().all() and table["flow_run_id"].nunique() == 1  # one steer flow run
    assert (camp / "steering" / "figures" / "inlet_speed_high_dose_response.png").is_file()


def test_cli_steer_names_the_bad_field(tmp_path: Path):
    assert "Usage" in runner.invoke(app, ["steer", "--help"]).output
    camp = make_campaign(tmp_path)
    for args, field in ((["--concept", "wind"], "concept"), (["--layer", "closure.nope"], "layers"),
                        (["--toward", "up"], "toward"), (["--split", "9"], "split")):
        result = runner.invoke(app, ["steer", str(camp), *args])
        assert result.exit_code == 2, result.output
        assert field in result.output and "error" in result.output
    missing = runner.invoke(app, ["steer", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "campaign_dir" in missing.output


def test_steering_parameters_are_declared_once():
    """The flow's parameters and the command's options are SteeringConfig's fields, same defaults."""
    fields = {name: f.default for name, f in SteeringConfig.model_fields.items()}
    for function in (steer_flow.fn, steer_command):
        params = inspect.signature(function).parameters
        assert list(params)[0] == "campaign_dir"
        assert {name: p.default for name, p in list(params.items())[1:]} == fields, function
