"""The `closedloop` command line: contracts of DESIGN.md and clear errors."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from closedloop.cli import app
from closedloop.lab.store import read_case
from tests.conftest import ROOM

runner = CliRunner()


def flat(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.mark.parametrize("args", [[], ["simulate"], ["train"], ["predict"], ["campaign"], ["campaign", "run"],
                                  ["campaign", "status"], ["serve"]])
def test_every_command_has_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_simulate_train_predict_round_trip(tmp_path: Path):
    scen = tmp_path / "short.toml"
    scen.write_text(ROOM.read_text().replace("horizon = 120.0", "horizon = 40.0"))
    sim = runner.invoke(app, ["simulate", str(scen), "--out", str(tmp_path / "ref"), "--device", "cpu"])
    assert sim.exit_code == 0, sim.output
    (ref_file,) = (tmp_path / "ref").glob("*.parquet")
    ref = read_case(ref_file)
    assert ref.provenance["producer"] == "reference"
    assert len(pd.read_parquet(ref_file)) == 5  # t = 0, 10, 20, 30, 40

    model = tmp_path / "m.pt"
    tr = runner.invoke(app, ["train", str(tmp_path / "ref"), "--out", str(model), "--epochs", "3"])
    assert tr.exit_code == 0, tr.output
    ckpt = torch.load(model, weights_only=True)
    assert ckpt["trained_on"] == [ref.case_id] and ckpt["best_loss"] <= ckpt["initial_loss"]

    pr = runner.invoke(app, ["predict", str(model), str(scen), "--out", str(tmp_path / "pred")])
    assert pr.exit_code == 0, pr.output
    (pred_file,) = (tmp_path / "pred").glob("*.parquet")
    pred = read_case(pred_file)
    # same format as simulate: same id, times, plane shape and mask; produced by the surrogate
    assert pred_file.name == ref_file.name
    assert torch.equal(pred.times, ref.times) and pred.plane.shape == ref.plane.shape
    assert torch.equal(pred.plane_mask, ref.plane_mask)
    assert pred.provenance["producer"] == "surrogate"
    assert list(pd.read_parquet(pred_file).columns[:2]) == ["time", "plane"]


def test_bad_scenario_names_the_field(tmp_path: Path):
    scen = tmp_path / "bad.toml"
    scen.write_text(ROOM.read_text().replace("eddy_diffusivity = 0.02", "eddy_diffusivity = -1.0"))
    result = runner.invoke(app, ["simulate", str(scen), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "eddy_diffusivity" in flat(result)
    assert not (tmp_path / "o").exists()


def test_missing_inputs_are_reported(tmp_path: Path):
    assert "not found" in flat(runner.invoke(app, ["simulate", str(tmp_path / "nope.toml"), "--out", "x"]))
    res = runner.invoke(app, ["campaign", "status", str(tmp_path)])
    assert res.exit_code == 2 and "not a campaign directory" in flat(res)
    res = runner.invoke(app, ["predict", str(tmp_path / "none.pt"), str(ROOM), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "checkpoint not found" in flat(res)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["predict", str(junk), str(ROOM), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "not a readable closedloop checkpoint" in flat(res)


def test_campaign_run_rejects_bad_config(tmp_path: Path):
    from tests.conftest import fast_config_text

    cfg = tmp_path / "bad.toml"
    cfg.write_text(fast_config_text(batch_size="1"))
    res = runner.invoke(app, ["campaign", "run", str(cfg), "--dir", str(tmp_path / "c")])
    assert res.exit_code == 2 and "budget.batch_size" in flat(res)
    assert not (tmp_path / "c").exists()
