"""Steering benchmark: does a concept direction move the surrogate toward the target regime's reference?

Setup (all on 2 CPU cores, ≲ 10 min): the smoke design (source_x, source_y, inlet_speed) on the room,
16 Sobol reference cases, a hybrid surrogate trained on them (built once, kept in bench/data/). For each
concept (a design parameter toward its high or low regime):

- Δ per closure layer from the two ledger groups split at the parameter's median;
- base cases: new Sobol scenarios on the other side of the split (never in the ledger): 3 for tuning,
  8 held out; each base case's target = the same scenario with the parameter at group A's mean,
  simulated by the reference solver (cached);
- Δ per channel (mean over the plane, the paper's mode) and, for source_x, also per cell (``field``);
- BoTorch (lab/steering/search.py, planners/steering.py) chooses (layer, α, step window) on the 3 tuning
  cases; the chosen experiment is then scored on the 8 held-out ones: the fraction whose distance to
  the target reference drops, and the mean log(d_unsteered / d_steered);
- controls: 16 random directions of the same norm at the same layer, α and window, and the same
  direction with −α; the "floor" is the surrogate's own error when given the target scenario;
- dose-response over α (mean effect measures), specificity (library ``specificity``), and, for the
  inlet-speed concepts, transfer to another scenario family: a walking (moving) source.

Writes bench/results/steering.json and prints a table.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

from closedloop.lab import campaign as camp
from closedloop.lab import steering
from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import CampaignStore, code_version
from closedloop.planners.design import sobol_design
from closedloop.planners.steering import SteeringExperiment
from closedloop.simulators import Scenario
from closedloop.surrogates.steering import (dose_response, effect_measures, random_direction, specificity,
                                            transfer)

from common import RESULTS, machine, write_result

os.environ.setdefault("CLOSEDLOOP_FLOW_CACHE", "off")
REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data" / "steering"
# (parameter, toward, reduce): space_mean is the paper's per-channel Δ; field keeps Δ per cell
CONCEPTS = [("inlet_speed", "high", "space_mean"), ("inlet_speed", "low", "space_mean"),
            ("source_x", "high", "space_mean"), ("source_x", "low", "space_mean"),
            ("source_x", "high", "field"), ("source_x", "low", "field")]
TARGET_MEASURE = {"inlet_speed": "mass", "source_x": "centroid_x"}
N_CASES, N_TUNE, N_TEST, N_RANDOM = 16, 3, 8, 16
ALPHA_MAX = 6.0
ALPHAS = [float(a) for a in range(-6, 7)]
console = Console(width=160)


def build_campaign(data: Path = DATA) -> Path:
    """16 Sobol reference cases and round_000 trained on them (reused when already built)."""
    config = load_campaign_config(REPO / "configs" / "smoke.toml").with_overrides(
        **{"name": "steering_bench", "budget.initial_cases": N_CASES, "budget.rounds": 1, "surrogate.epochs": 40})
    # the surrogate's code changes what a checkpoint means: one campaign per config and code version
    root = data / f"campaign-{config.config_hash()}-{code_version().replace('+', '-')}"
    store = CampaignStore(root)
    if camp.round_complete(store, 0):
        return root
    t0 = time.perf_counter()
    batch, _ = camp.round_proposals(config, store, 0)  # the campaign's Sobol design, stored first
    camp.record_outcomes(store, [camp.run_case(config, store, p) for p in batch])
    t1 = time.perf_counter()
    report = camp.retrain_round(config, store, 0, camp.training_set(store.read_ledger(), 0))
    store.write_state(camp.campaign_state(config, store, status="finished"))
    console.print(f"campaign: {N_CASES} simulations {t1 - t0:.0f} s, training {report.seconds:.0f} s "
                  f"(loss {report.initial_loss:.3f} → {report.best_loss:.3f})")
    return root


def ledger_groups(campaign: steering.SteeringCampaign, parameter: str, toward: str) -> steering.Groups:
    """All done ledger cases split at the median (no hold-out: base cases are new scenarios)."""
    table = steering.case_parameters(campaign.store.read_ledger())
    split = float(table[parameter].median())
    hi, lo = f"`{parameter}` >= {split!r}", f"`{parameter}` < {split!r}"
    qa, qb = (hi, lo) if toward == "high" else (lo, hi)
    a, b = table.query(qa), table.query(qb)
    return steering.Groups(concept=f"{parameter}_{toward}", parameter=parameter, split=split, query_a=qa, query_b=qb,
                      a=a, b=b, base=b.iloc[:0], target_value=float(a[parameter].mean()))


def new_base_cases(campaign: steering.SteeringCampaign, groups: steering.Groups, n: int, seed: int) -> pd.DataFrame:
    """Sobol scenarios on group B's side of the split whose base and target scenarios are both valid."""
    space = campaign.design.space()
    rows = []
    for params in space.as_dicts(sobol_design(space, 256, seed=seed)):
        if not pd.DataFrame([params]).query(groups.query_b).shape[0]:
            continue
        try:
            campaign.scenario_for(params)
            campaign.scenario_for({**params, groups.parameter: groups.target_value})
        except ValueError:
            continue
        rows.append({"case_id": campaign.scenario_for(params).case_id(), **params})
        if len(rows) == n:
            break
    return pd.DataFrame(rows)


def walking(scenario: Scenario, x0: float, y0: float, x1: float, y1: float) -> Scenario:
    """The scenario with its source walking in a straight line over the horizon (another family)."""
    data = scenario.model_dump(mode="json")
    z = data["source"]["z"]
    data["source"] = {**{k: v for k, v in data["source"].items() if k not in ("x", "y", "z")},
                      "trajectory": [{"t": 0.0, "x": x0, "y": y0, "z": z},
                                     {"t": scenario.time.horizon, "x": x1, "y": y1, "z": z}]}
    return Scenario.model_validate(data)


def references(campaign: steering.SteeringCampaign, targets: list[steering.Target]) -> list[torch.Tensor]:
    rows = [steering.simulate_target(campaign.steering_dir, t.scenario, "cpu", campaign.seed) for t in targets]
    return steering.read_references(targets, rows)


def log_ratio(d0: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return d0.log() - d.clamp_min(1e-300).log()


def scores(problem: steering.SteeringProblem, experiment: SteeringExperiment, direction=None) -> dict:
    d0 = problem.distance(problem.unsteered)
    d = problem.distance(problem.predict(experiment, direction))
    lr = log_ratio(d0, d)
    return {"fraction_improved": float((d < d0).double().mean()), "mean_log_ratio": float(lr.mean()),
            "distance_steered": d.tolist()}


def dose(problem: steering.SteeringProblem, direction, best: SteeringExperiment) -> dict[str, torch.Tensor]:
    return dose_response(lambda: problem.model.rollout(problem.forcing, problem.n_steps), problem.model, direction,
                         ALPHAS, lambda s: effect_measures(s, problem.spacing, problem.mask, target=problem.reference),
                         steps=best.steps(problem.n_steps))


def surrogate_floor(campaign: steering.SteeringCampaign, problem: steering.SteeringProblem) -> list[float]:
    """Distance of the surrogate's prediction *of the target scenario* to its reference: the model's own
    error there, which no steering of the base case can be expected to beat."""
    return problem.distance(camp.predict_cases(campaign.model, [t.scenario for t in problem.targets])).tolist()


def model_target(campaign: steering.SteeringCampaign, problem: steering.SteeringProblem, best: SteeringExperiment) -> dict:
    """The same experiment scored against the surrogate's own prediction of the target scenario: does
    steering reproduce the regime change *as the model sees it*, free of the model's error?"""
    own = camp.predict_cases(campaign.model, [t.scenario for t in problem.targets])

    def dist(pred: torch.Tensor) -> torch.Tensor:
        return (pred - own).flatten(1).norm(dim=1) / own.flatten(1).norm(dim=1).clamp_min(1e-300)

    d0, d = dist(problem.unsteered), dist(problem.predict(best))
    return {"distance_unsteered": d0.tolist(), "distance_steered": d.tolist(),
            "fraction_improved": float((d < d0).double().mean()), "mean_log_ratio": float(log_ratio(d0, d).mean())}


def run_concept(campaign: steering.SteeringCampaign, layers: list[str], parameter: str, toward: str, reduce: str,
                seed: int) -> dict:
    t0 = time.perf_counter()
    groups = ledger_groups(campaign, parameter, toward)
    base = new_base_cases(campaign, groups, N_TUNE + N_TEST, seed=100 + seed)
    groups.base = base
    targets = steering.target_scenarios(campaign, groups)
    directions = steering.measure_directions(campaign, groups, layers, n_bootstrap=200, seed=seed, reduce=reduce)
    refs = references(campaign, targets)
    tune = steering.steering_problem(campaign, layers, directions, targets[:N_TUNE], refs[:N_TUNE])
    test = steering.steering_problem(campaign, layers, directions, targets[N_TUNE:], refs[N_TUNE:])
    config = steering.SteeringConfig(concept=parameter, toward=toward, alpha_min=-ALPHA_MAX, alpha_max=ALPHA_MAX,
                                initial_experiments=8, rounds=4, batch_size=2, seed=seed, reduce=reduce)
    search = steering.search_experiments(tune, config)
    best = search.best
    direction = directions[best.layer]
    d0 = test.distance(test.unsteered)
    held_out = scores(test, best)
    randoms = [scores(test, best, random_direction(direction, 1000 + s)) for s in range(N_RANDOM)]
    flipped = scores(test, SteeringExperiment(-best.alpha, best.layer, best.first_step, best.window))
    resp = dose(test, direction, best)
    measure = TARGET_MEASURE[parameter]
    ref_m = {k: float(v.mean()) for k, v in test.measures(test.reference).items() if k != "distance"}
    un_m = {k: float(v.mean()) for k, v in test.measures(test.unsteered).items()}
    st_m = {k: float(v.mean()) for k, v in test.measures(test.predict(best)).items()}
    result = {
        "concept": config.name, "reduce": reduce, "split": groups.split, "target_value": groups.target_value,
        "n_a": len(groups.a), "n_b": len(groups.b), "query_a": groups.query_a,
        "directions": {d.layer: {"norm": d.norm, "bootstrap_norm_std": d.bootstrap_norm_std,
                                 "bootstrap_cosine": d.bootstrap_cosine} for d in directions},
        "search": {"experiments": len(search.experiments), "tuning_cases": N_TUNE,
                   "best": {"layer": layers[best.layer], "alpha": best.alpha, "first_step": best.first_step,
                            "last_step": best.steps(test.n_steps)[-1]},
                   "tuning_objective": float(search.values.max()),
                   "sobol_best_objective": float(search.values[:config.initial_experiments].max())},
        "held_out": {"cases": N_TEST, "distance_unsteered": d0.tolist(), **held_out,
                     "surrogate_floor": surrogate_floor(campaign, test)},
        "toward_model_target": model_target(campaign, test, best),
        "random_direction": {
            "n": N_RANDOM, "fraction_improved": sum(r["fraction_improved"] for r in randoms) / N_RANDOM,
            "mean_log_ratio": sum(r["mean_log_ratio"] for r in randoms) / N_RANDOM,
            "max_mean_log_ratio": max(r["mean_log_ratio"] for r in randoms),
            "p_value": (1 + sum(r["mean_log_ratio"] >= held_out["mean_log_ratio"] for r in randoms)) / (N_RANDOM + 1)},
        "flipped_sign": {k: flipped[k] for k in ("fraction_improved", "mean_log_ratio")},
        "dose_response": {"alpha": ALPHAS, **{k: v.mean(dim=1).tolist() for k, v in resp.items()}},
        "target_measure": measure,
        "specificity": specificity(resp, measure),
        "measures": {"reference": ref_m, "unsteered": un_m, "steered": st_m},
        "seconds": time.perf_counter() - t0,
    }
    if parameter == "inlet_speed" and reduce == "space_mean":
        result["transfer_walking"] = walking_transfer(campaign, groups, direction, best, resp)
    return result


def walking_transfer(campaign: steering.SteeringCampaign, groups: steering.Groups, direction, best: SteeringExperiment,
                     static_response: dict[str, torch.Tensor]) -> dict:
    """The static-source direction applied to walking-source cases of the base regime."""
    speeds = groups.b[groups.parameter]
    paths = [(1.5, 1.5, 8.5, 2.0), (8.5, 5.0, 1.5, 4.5), (2.0, 1.0, 3.5, 5.0), (9.0, 1.0, 6.5, 5.0)]  # clear of the pillar
    base_sc, targets = [], []
    for k, (x0, y0, x1, y1) in enumerate(paths):
        speed = float(speeds.iloc[k % len(speeds)])
        b = walking(campaign.scenario_for({groups.parameter: speed}), x0, y0, x1, y1)
        t = walking(campaign.scenario_for({groups.parameter: groups.target_value}), x0, y0, x1, y1)
        base_sc.append(b)
        targets.append(steering.Target(b.case_id(), {groups.parameter: speed}, {groups.parameter: groups.target_value}, t))
    refs = references(campaign, targets)
    problem = steering.steering_problem(campaign, [direction.layer], [direction], targets, refs, base_scenarios=base_sc)
    one_layer = SteeringExperiment(best.alpha, 0, best.first_step, best.window)
    moved = scores(problem, one_layer)
    resp = dose(problem, direction, best)
    slopes = transfer({"static": static_response, "walking": resp}, ALPHAS, "distance", source="static")
    return {"cases": len(paths), "distance_unsteered": problem.distance(problem.unsteered).tolist(), **moved,
            "distance_slope_ratio": slopes["walking"],
            "surrogate_floor": surrogate_floor(campaign, problem)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concepts", type=int, default=len(CONCEPTS), help="the first N concepts only (a smoke run)")
    ap.add_argument("--data", type=Path, default=DATA, help="where the campaign and target cases are kept")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where steering.json goes")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    root = build_campaign(args.data)
    campaign = steering.open_campaign(root)
    layers = steering.candidate_layers(campaign.model)
    results = []
    for k, (parameter, toward, reduce) in enumerate(CONCEPTS[:args.concepts]):
        r = run_concept(campaign, layers, parameter, toward, reduce, seed=k)
        results.append(r)
        console.print(f"{r['concept']}: {r['seconds']:.0f} s")
    table = Table(title="Steering toward a regime: held-out base cases (8 per concept) vs the target's reference")
    for col in ("concept", "chosen layer, α, steps", "d unsteered", "d steered", "surrogate floor", "improved",
                "mean log(d₀/d)", "random Δ: improved", "random Δ: log(d₀/d)", "p", "−α: log(d₀/d)",
                "vs model's target: log(d₀/d)"):
        table.add_column(col)
    for r in results:
        b, h, rd = r["search"]["best"], r["held_out"], r["random_direction"]
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        table.add_row(r["concept"], f"{b['layer'].removeprefix('closure.')}, {b['alpha']:.2f}, "
                      f"{b['first_step']}–{b['last_step']}", f"{mean(h['distance_unsteered']):.3f}",
                      f"{mean(h['distance_steered']):.3f}", f"{mean(h['surrogate_floor']):.3f}",
                      f"{h['fraction_improved']:.0%}", f"{h['mean_log_ratio']:+.4f}", f"{rd['fraction_improved']:.0%}",
                      f"{rd['mean_log_ratio']:+.4f}", f"{rd['p_value']:.2f}", f"{r['flipped_sign']['mean_log_ratio']:+.4f}",
                      f"{r['toward_model_target']['mean_log_ratio']:+.4f}")
    console.print(table)
    for r in results:
        if "transfer_walking" in r:
            t = r["transfer_walking"]
            console.print(f"{r['concept']} → walking source: improved {t['fraction_improved']:.0%}, mean log(d₀/d) "
                          f"{t['mean_log_ratio']:+.4f}, dose slope ratio {t['distance_slope_ratio']:.2f}")
    where = root.relative_to(REPO) if root.is_relative_to(REPO) else root
    path = write_result("steering", {"machine": machine(), "campaign": str(where),
                                     "model": campaign.model_name, "checkpoint_id": campaign.checkpoint_id,
                                     "layers": layers, "concepts": results, "seconds": time.perf_counter() - t0},
                        args.results)
    console.print(f"wrote {path} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
