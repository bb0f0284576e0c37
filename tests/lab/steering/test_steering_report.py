"""The steering report: tables and summary agree with the search, α = 0 of the dose-response is the
unsteered model, and writing keeps other concepts' rows and summaries."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from closedloop.lab import steering
from closedloop.planners.steering import SteeringExperiment


def test_the_report_agrees_with_its_search(steered):
    problem, config = steered.problem, steered.config
    search = steering.search_experiments(problem, config)
    report = steering.build_report(steered.campaign, config, steered.groups, steered.directions, problem, search,
                                   flow_run_id="run-1")
    table = report.experiments
    assert len(table) == len(search.experiments) * len(problem.targets)
    assert table["objective"].tolist() == pytest.approx(search.values.tolist(), rel=1e-12)
    assert table["best"].sum() == 1 and set(table["flow_run_id"]) == {"run-1"}
    assert report.summary["best"]["objective"] == pytest.approx(float(search.values.max()))
    assert report.summary["checkpoint_id"] == steered.campaign.checkpoint_id
    assert set(report.figures) == {"dose_response", "before_after"}
    assert all(png.startswith(b"\x89PNG") for png in report.figures.values())
    assert steering.markdown_with_images(report).count("data:image/png;base64,") == 2


def test_dose_response_includes_zero_and_it_is_the_unsteered_model(steered):
    problem = steered.problem
    best = SteeringExperiment(alpha=0.5, layer=1, first_step=1, window=2)
    dose = steering.dose_response_table(problem, best, 3, -1.0, 1.0)
    assert dose["alpha"].tolist() == [-1.0, 0.0, 1.0]
    unsteered = float(problem.distance(problem.unsteered).mean())
    assert dose.loc[dose["alpha"] == 0.0, "distance"].item() == pytest.approx(unsteered, rel=1e-12)
    assert set(dose.columns) == {"alpha", *steering.MEASURES}


def _report(concept: str, value: int) -> steering.SteeringReport:
    return steering.SteeringReport(concept=concept, experiments=pd.DataFrame({"concept": [concept], "x": [value]}),
                                   dose=pd.DataFrame({"alpha": [0.0], "distance": [1.0]}),
                                   figures={"dose_response": b"\x89PNG fake"}, summary={"x": value},
                                   markdown=f"# {concept}")


def test_writing_a_concept_keeps_the_others(tmp_path: Path):
    campaign = SimpleNamespace(steering_dir=tmp_path / "steering")
    for concept, value in (("a_high", 1), ("b_high", 2), ("a_high", 3)):
        written = steering.write_results(campaign, _report(concept, value))
    table = pd.read_parquet(tmp_path / "steering" / "experiments.parquet")
    assert sorted(zip(table["concept"], table["x"])) == [("a_high", 3), ("b_high", 2)]
    assert sorted(pd.read_parquet(tmp_path / "steering" / "dose_response.parquet")["concept"]) == ["a_high", "b_high"]
    assert json.loads((tmp_path / "steering" / "summary.json").read_text()) == {"a_high": {"x": 3}, "b_high": {"x": 2}}
    assert (tmp_path / "steering" / "figures" / "a_high_dose_response.png").read_bytes() == b"\x89PNG fake"
    assert "![dose_response](figures/a_high_dose_response.png)" in (tmp_path / "steering" / "a_high.md").read_text()
    assert written.paths["report"] == str(tmp_path / "steering" / "a_high.md")
    assert not list((tmp_path / "steering").rglob("*.tmp"))
