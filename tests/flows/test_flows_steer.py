"""The steer flow under a Prefect test server: results, artifacts, cached target simulations."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from closedloop.flows.steer import steer
from closedloop.lab.steering import targets
from tests.lab.steering_campaign import make_campaign

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_steer_flow_writes_results_and_artifacts_and_reuses_targets(tmp_path: Path, monkeypatch):
    camp = make_campaign(tmp_path)
    summary = steer(str(camp), concept="source_x", base_cases=1, initial_experiments=3, rounds=1, batch_size=2)
    assert summary["concept"] == "source_x_high" and summary["experiments"] == 5
    out = camp / "steering"
    table = pd.read_parquet(out / "experiments.parquet")
    assert len(table) == 5 and set(table["strategy"]) == {"sobol", "gp"} and table["flow_run_id"].notna().all()
    # the objective is the log ratio of the recorded distances (one base case)
    ratio = (table["distance_unsteered"] / table["distance_steered"]).map(math.log)
    assert (ratio - table["objective"]).abs().max() < 1e-9
    assert table["best"].sum() == 1 and table.loc[table["best"], "objective"].item() == table["objective"].max()
    # the target regime: the base case's source moved to the mean x of group A, simulated once
    (target,) = summary["target_cases"]
    case = pd.read_parquet(out / "cases" / f"{target}.parquet")
    assert len(case) == 4  # t = 0, 10, 20, 30
    # α = 0 in the dose-response is the unsteered model exactly
    dose = pd.read_parquet(out / "dose_response.parquet")
    assert dose.loc[dose["alpha"] == 0.0, "distance"].item() == pytest.approx(summary["distance_unsteered"][0],
                                                                              rel=1e-12)
    for name in ("dose_response", "before_after"):
        assert (out / "figures" / f"source_x_high_{name}.png").stat().st_size > 5000
    assert "before_after" in (out / "source_x_high.md").read_text()
    assert json.loads((out / "summary.json").read_text())["source_x_high"]["checkpoint_id"] == summary["checkpoint_id"]
    assert (out / "directions" / "source_x_high.pt").is_file()

    from prefect.artifacts import Artifact

    from closedloop.lab.store import CampaignStore
    keys = [CampaignStore(camp).artifact_key("steer", "source_x_high", kind) for kind in ("experiments", "report")]
    assert keys[0].startswith("steer-") and keys[0].endswith("-source-x-high-experiments")  # names the directory
    rows = Artifact.get(keys[0])
    assert rows is not None and '"distance_steered"' in rows.data
    report = Artifact.get(keys[1])
    assert report is not None and "data:image/png;base64" in report.data

    # a second run reuses the target reference (Prefect cache and case file): no simulation
    monkeypatch.setattr(targets, "simulate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("simulated again")))
    again = steer(str(camp), concept="source_x", base_cases=1, initial_experiments=2, rounds=0)
    assert again["target_cases"] == summary["target_cases"]


def test_steer_flow_refuses_an_unknown_layer_by_name(tmp_path: Path):
    camp = make_campaign(tmp_path)
    with pytest.raises(ValueError, match="^layers: "):
        steer(str(camp), layers=["closure.missing"])
