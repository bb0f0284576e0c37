"""`closedloop train` and `closedloop predict`: a model trained on simulated cases predicts a scenario in
the same case format as `simulate`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from closedloop.cli import app
from closedloop.lab.store import read_case
from tests.cli.cli_runner import runner
from tests.conftest import ROOM


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
