"""The steering report: the experiments table, the dose-response, figures and a summary, written
atomically under ``steering/`` (rows of other concepts kept)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from closedloop.lab.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from closedloop.lab.figures import before_after_figure, data_url, dose_response_figure
from closedloop.lab.steering.config import MEASURES, SteeringConfig
from closedloop.lab.steering.groups import Groups
from closedloop.lab.steering.opened import SteeringCampaign
from closedloop.lab.steering.search import SteeringProblem
from closedloop.lab.store import now_iso
from closedloop.lab.tables import significant
from closedloop.planners.steering import SteeringExperiment, SteeringSearch
from closedloop.surrogates.steering import ConceptDirection


def experiment_rows(problem: SteeringProblem, search: SteeringSearch, config: SteeringConfig,
                    checkpoint_id: str, flow_run_id: str | None = None) -> pd.DataFrame:
    """One row per (experiment, base case): the steered and unsteered distance to the target reference."""
    d0 = problem.distance(problem.unsteered)
    rows = []
    for i, (e, y, strategy) in enumerate(zip(search.experiments, search.values, search.strategies)):
        d = problem.distance(problem.predict(e))
        for t, ds, du in zip(problem.targets, d, d0):
            rows.append({"concept": config.name, "experiment": i, "strategy": strategy,
                         "layer": problem.layers[e.layer], "alpha": e.alpha, "first_step": e.first_step,
                         "last_step": e.steps(problem.n_steps)[-1], "base_case": t.base_case,
                         "target_case": t.case_id, "distance_steered": float(ds), "distance_unsteered": float(du),
                         "improved": bool(ds < du), "objective": float(y), "best": e == search.best,
                         "checkpoint_id": checkpoint_id, "flow_run_id": flow_run_id, "created": now_iso()})
    return pd.DataFrame(rows)


def dose_response_table(problem: SteeringProblem, best: SteeringExperiment, points: int,
                        alpha_min: float, alpha_max: float) -> pd.DataFrame:
    """The best experiment's layer and window over an α grid (α = 0 included): mean measures."""
    alphas = sorted(set(np.linspace(alpha_min, alpha_max, points).round(6).tolist()) | {0.0})
    rows = []
    for a in alphas:
        e = SteeringExperiment(alpha=float(a), layer=best.layer, first_step=best.first_step, window=best.window)
        m = problem.measures(problem.predict(e))
        rows.append({"alpha": float(a), **{k: float(m[k].mean()) for k in MEASURES}})
    return pd.DataFrame(rows)


@dataclass
class SteeringReport:
    """What a steering run produced: the tables, figures (PNG bytes) and a summary."""

    concept: str
    experiments: pd.DataFrame
    dose: pd.DataFrame
    figures: dict[str, bytes]
    summary: dict[str, Any]
    markdown: str = ""
    paths: dict[str, str] = field(default_factory=dict)


def build_report(campaign: SteeringCampaign, config: SteeringConfig, groups: Groups,
                 directions: list[ConceptDirection], problem: SteeringProblem, search: SteeringSearch,
                 flow_run_id: str | None = None) -> SteeringReport:
    """Tables, figures and summary of a finished search (no file written)."""
    table = experiment_rows(problem, search, config, campaign.checkpoint_id, flow_run_id)
    best = search.best
    dose = dose_response_table(problem, best, config.dose_points, config.alpha_min, config.alpha_max)
    ref_measures = {k: float(v.mean()) for k, v in problem.measures(problem.reference).items() if k != "distance"}
    ref_measures["distance"] = 0.0
    steered = problem.predict(best)
    d_steered, d_unsteered = problem.distance(steered), problem.distance(problem.unsteered)
    layer = problem.layers[best.layer]
    figures = {
        "dose_response": dose_response_figure(dose, ref_measures, f"{config.name}: {layer}, steps "
                                              f"{best.first_step}–{best.steps(problem.n_steps)[-1]}"),
        "before_after": before_after_figure(problem.unsteered[0, -1], steered[0, -1], problem.reference[0, -1],
                                            problem.mask, f"{config.name}, base case {problem.targets[0].base_case}, "
                                            f"α = {best.alpha:.3g}, final time"),
    }
    summary = {
        "concept": config.name, "parameter": groups.parameter, "split": groups.split,
        "query_a": groups.query_a, "query_b": groups.query_b, "n_a": len(groups.a), "n_b": len(groups.b),
        "target_value": groups.target_value, "model": campaign.model_name, "checkpoint_id": campaign.checkpoint_id,
        "base_cases": [t.base_case for t in problem.targets], "target_cases": [t.case_id for t in problem.targets],
        "directions": {d.layer: {"norm": d.norm, "bootstrap_norm_std": d.bootstrap_norm_std,
                                 "bootstrap_cosine": d.bootstrap_cosine} for d in directions},
        "experiments": len(search.experiments),
        "best": {"layer": layer, "alpha": best.alpha, "first_step": best.first_step,
                 "last_step": best.steps(problem.n_steps)[-1], "objective": float(search.values.max())},
        "distance_unsteered": d_unsteered.tolist(), "distance_steered": d_steered.tolist(),
        "fraction_improved": float((d_steered < d_unsteered).double().mean()),
        "created": now_iso(), "flow_run_id": flow_run_id,
    }
    head = [f"# Steering {config.name} on {campaign.model_name}", "",
            f"Groups: A = {groups.query_a} ({len(groups.a)} cases), B = {groups.query_b} ({len(groups.b)} cases); "
            f"target {groups.parameter} = {groups.target_value:.4g}.", "",
            f"{len(search.experiments)} experiments (BoTorch after {config.initial_experiments} Sobol). Best: "
            f"layer `{layer}`, α = {best.alpha:.3g}, steps {best.first_step}–{best.steps(problem.n_steps)[-1]}.", "",
            "| base case | target case | distance unsteered | distance steered |", "|---|---|---|---|"]
    head += [f"| {t.base_case} | {t.case_id} | {du:.4f} | {ds:.4f} |"
             for t, du, ds in zip(problem.targets, d_unsteered.tolist(), d_steered.tolist())]
    return SteeringReport(concept=config.name, experiments=table, dose=dose, figures=figures, summary=summary,
                          markdown="\n".join(head))


def write_results(campaign: SteeringCampaign, report: SteeringReport) -> SteeringReport:
    """Write under ``steering/``: experiments.parquet (rows of other concepts kept), dose_response.parquet,
    figures/<concept>_*.png, <concept>.md and summary.json; every file atomically."""
    root = campaign.steering_dir
    paths: dict[str, str] = {}
    for key, table in (("experiments", report.experiments), ("dose_response", report.dose.assign(concept=report.concept))):
        path = root / f"{key}.parquet"
        old = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
        if len(old) and "concept" in old:
            old = old[old["concept"] != report.concept]
        merged = pd.concat([old, table], ignore_index=True) if len(old) else table
        atomic_write(path, lambda tmp, m=merged: m.to_parquet(tmp, index=False), label="steering")
        paths[key] = str(path)
    md = [report.markdown]
    for name, png in report.figures.items():
        path = root / "figures" / f"{report.concept}_{name}.png"
        atomic_write_bytes(path, png, label="figure")
        paths[name] = str(path)
        md += ["", f"![{name}](figures/{path.name})"]
    report_path = root / f"{report.concept}.md"
    atomic_write_text(report_path, "\n".join(md) + "\n", label="report")
    paths["report"] = str(report_path)
    summary_path = root / "summary.json"
    summaries = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summaries[report.concept] = report.summary
    atomic_write_text(summary_path, json.dumps(summaries, indent=1, sort_keys=True), label="summary")
    paths["summary"] = str(summary_path)
    report.paths = paths
    return report


def experiments_table(report: SteeringReport) -> list[dict[str, Any]]:
    """The experiments as table rows for the UI: numbers to 4 significant digits, the distances
    next to the experiment's identity (bookkeeping columns left out)."""
    table = report.experiments.drop(columns=["checkpoint_id", "flow_run_id", "created"])
    first = ["experiment", "base_case", "distance_steered", "distance_unsteered", "improved", "objective"]
    table = table[first + [c for c in table.columns if c not in first]]
    return [{k: significant(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def markdown_with_images(report: SteeringReport) -> str:
    """The report with figures inlined (for a Prefect markdown artifact)."""
    md = [report.markdown]
    for name, png in report.figures.items():
        md += ["", f"![{name}]({data_url(png)})"]
    return "\n".join(md)
