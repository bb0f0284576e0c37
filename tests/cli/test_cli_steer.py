"""`closedloop steer` on a tiny campaign: the steps of the steer flow, with a table and files."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from closedloop.cli import app
from tests.lab.steering_campaign import make_campaign

runner = CliRunner()


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
    assert table["flow_run_id"].isna().all()  # not a Prefect run
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
