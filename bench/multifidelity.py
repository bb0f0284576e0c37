"""Multi-fidelity, cost-aware campaigns vs Sobol designs at equal reference CPU-seconds (issue 15).

Space (configs/multifidelity.toml; 5 dimensions, reduced to fit 2 shared CPU cores): the small office
configs/scenarios/room.toml (10 × 6 × 3 m, potential flow, 120 s, outputs every 10 s) instead of the
hall; source x ∈ [1, 9] m, source y ∈ [0.75, 5.25] m, emission rate ∈ [0.5, 2] mg/s, release time ∈
[0, 60] s, inlet speed ∈ [0.3, 1.2] m/s; infeasible where the source lies in the pillar. Two levels:
``coarse`` 0.5 m cells, first-order upwind, forward Euler; ``fine`` (the top, the truth) 0.25 m cells,
TVD + SSP-RK2. The surrogate (4 hidden channels, 20 epochs, then 8 warm-start epochs per round) runs on
the 0.5 m plane grid; fine planes are restricted onto it conservatively; it learns from both levels
with the level as an input (a diffusivity shift and a closure channel, surrogates/model.py) and
predicts at the top level. Every arm's warm starts get the same training compute (``LEARNER``: at most
16 mini-batches an epoch, judged on 32 cases, which never caps sobol_top), so that arms differ in their
cases, not in how long they train.

Protocol: a fixed test set of 24 uniform random feasible fine cases (own seed). Error: relative L2 of
the plane at the final time against the fine reference, mean and 95th percentile over the test set.
Arms (each a campaign of the library's own steps: ``round_proposals``, ``run_case``,
``validate_cases``, ``retrain_round``, ``stop_reason``; 7 rounds; 3 seeds):

- ``sobol_top``: 8 + 6 × 4 fine Sobol cases; its total CPU-seconds B is the reference budget;
- ``sobol_low``: 64 + 6 × 64 coarse Sobol cases (they cost about half of B);
- ``sobol_mix``: 24 coarse + 4 fine, then 16 coarse + 2 fine per round (Sobol);
- ``multifidelity``: 24 coarse + 4 fine, then the cost-aware MF planner (planners/multifidelity.py),
  at most 64 cases and B / 6 expected CPU-seconds per round, budget.max_cpu_seconds = B;
- ``multifidelity_top``: the same with ``fidelity_plan.top_share = 0.5`` (a proposed case goes to the
  top level while the top level holds less than half of the CPU-seconds).

CPU-seconds are the reference simulations' measured process CPU time, as the ledger records them
(a case simulated once is shared by every run through ``work/cases``, with its recorded cost).
Headline: for each seed, the CPU-seconds the MF planner needs to reach sobol_top's final mean (and
p95) test error, over B; the worst seed; and each arm's top-level share of its CPU-seconds (a cost-aware
planner stuck at the cheap level shows here). Also: proposal latency (q = 4, 200 observed points), the
grid check (two cases at 0.125 m: is fine closer to it than coarse?) and the levels' correlation (the
test points at the coarse level: Pearson r of the final planes against the fine ones).

    .venv/bin/python bench/multifidelity.py [--seeds 0,1,2] [--arms a,b] [--ablation 0] [--work DIR] [--results DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, machine, write_result  # noqa: E402

from closedloop.lab import campaign as steps  # noqa: E402
from closedloop.lab.campaign.design import feasible_mask, scenario_for  # noqa: E402
from closedloop.lab.campaign.fidelity import spend_by_level, surrogate_scenario, with_level  # noqa: E402
from closedloop.lab.campaign.simulation import record_outcomes, run_case  # noqa: E402
from closedloop.lab.config import CampaignConfig, load_campaign_config  # noqa: E402
from closedloop.lab.store import CampaignStore  # noqa: E402
from closedloop.planners.design import random_design  # noqa: E402
from closedloop.simulators import simulate  # noqa: E402
from closedloop.simulators.fidelity import band_weights, refinement_factor, restrict_plane  # noqa: E402
from closedloop.surrogates.checkpoint import load_model  # noqa: E402
from closedloop.surrogates.coupling import batch_problems  # noqa: E402

CONFIG = Path(__file__).parents[1] / "configs" / "multifidelity.toml"
TEST_SEED = 424242
ROUNDS = 7
# Every arm's warm start gets the same training compute, whatever its cases: at most 16 mini-batches of 2
# an epoch (sobol_top's 32 cases at its last round, so the reference arm is never capped) and each
# epoch judged on 32 cases. Without the cap a 448-case arm trains 14x longer a round than sobol_top.
LEARNER = {"surrogate.warm_start_batches": 16, "surrogate.judge_cases": 32}
ARMS = {
    "sobol_top": {"planner.strategy": "sobol", "budget.batch_size": 4,
                  "fidelity_plan": {"initial": {"fine": 8}, "mix": {"fine": 1}}},
    "sobol_low": {"planner.strategy": "sobol", "budget.batch_size": 64,
                  "fidelity_plan": {"initial": {"coarse": 64}, "mix": {"coarse": 1}}},
    "sobol_mix": {"planner.strategy": "sobol", "budget.batch_size": 18,
                  "fidelity_plan": {"initial": {"coarse": 24, "fine": 4}, "mix": {"coarse": 16, "fine": 2}}},
    "multifidelity": {"planner.strategy": "multifidelity", "budget.batch_size": 64,
                      "fidelity_plan": {"initial": {"coarse": 24, "fine": 4}}},
    # the same planner with half of the CPU-seconds kept for the top level (fidelity_plan.top_share,
    # the remedy for a cost-aware planner stuck at the cheap level; 0.5 chosen before it ran)
    "multifidelity_top": {"planner.strategy": "multifidelity", "budget.batch_size": 64,
                          "fidelity_plan": {"initial": {"coarse": 24, "fine": 4}, "top_share": 0.5}},
}


# The cheap level (``--cheap``): ``coarse`` as configs/multifidelity.toml ships it (0.5 m, upwind, Euler:
# ~1/30 of a fine case's CPU-s), or ``upwind``: the fine 0.25 m grid with upwind advection and forward
# Euler (~1/6 of the CPU-s, about half coarse's gap to fine: it resolves what the surrogate's 0.5 m grid
# cannot). The upwind arms are sized to the same shares of B as the coarse ones (sobol_low about half,
# the mix about 0.6), and start from 8 upwind + 4 fine.
CHEAP_LEVELS = {"coarse": None,
                "upwind": {"name": "upwind", "cell_size": 0.25,
                           "numerics": {"advection": "upwind", "time_stepping": "euler"}}}
UPWIND_ARMS = {
    "sobol_top": ARMS["sobol_top"],
    "sobol_low": {"planner.strategy": "sobol", "budget.batch_size": 16,
                  "fidelity_plan": {"initial": {"upwind": 16}, "mix": {"upwind": 1}}},
    "sobol_mix": {"planner.strategy": "sobol", "budget.batch_size": 6,
                  "fidelity_plan": {"initial": {"upwind": 8, "fine": 4}, "mix": {"upwind": 4, "fine": 2}}},
    "multifidelity": {"planner.strategy": "multifidelity", "budget.batch_size": 64,
                      "fidelity_plan": {"initial": {"upwind": 8, "fine": 4}}},
    "multifidelity_top": {"planner.strategy": "multifidelity", "budget.batch_size": 64,
                          "fidelity_plan": {"initial": {"upwind": 8, "fine": 4}, "top_share": 0.5}},
}
TAG = ""  # "" for coarse, "_upwind" for upwind: the runs' directory names


def run_name(arm: str, seed: int) -> str:
    return f"{arm}{TAG}-{seed}"


def with_cheap_level(base: CampaignConfig, cheap: str) -> CampaignConfig:
    """``base`` with its first (cheap) level replaced by ``CHEAP_LEVELS[cheap]``, and the arms to match."""
    global TAG
    if CHEAP_LEVELS[cheap] is None:
        return base
    data = base.model_dump(mode="json")
    data["fidelity"][0] = CHEAP_LEVELS[cheap]
    data["fidelity_plan"] = {"initial": {cheap: 6, "fine": 2}, "mix": {cheap: 3, "fine": 1}}
    ARMS.clear()
    ARMS.update(UPWIND_ARMS)
    TAG = f"_{cheap}"
    return CampaignConfig.model_validate(data)


def shared_store(work: Path, name: str) -> CampaignStore:
    """``work/name`` with its cases in ``work/cases`` (one simulation per case id for every run)."""
    root = work / name
    root.mkdir(parents=True, exist_ok=True)
    (work / "cases").mkdir(parents=True, exist_ok=True)
    if not (root / "cases").exists():
        (root / "cases").symlink_to((work / "cases").resolve(), target_is_directory=True)
    return CampaignStore(root)


class TestSet:
    """Fixed test cases (the top level's, unless ``level`` names another): their surrogate-grid forcing
    and their final planes restricted onto it. ``points``: given, else ``n`` uniform feasible ones."""

    def __init__(self, config: CampaignConfig, work: Path, n: int, points: torch.Tensor | None = None,
                 level: str | None = None):
        space = config.design.space()
        if points is None:
            pool = random_design(space, 8 * n, seed=TEST_SEED)
            points = pool[feasible_mask(config, pool)][:n]
        self.points = points
        store = shared_store(work, "test")
        at = next(lv for lv in config.fidelity if lv.name == level) if level else config.fidelity[-1]
        h_s = float(config.scenario.room.cell_size)
        planes, scenarios, self.cpu = [], [], []
        for params in space.as_dicts(self.points):
            params = with_level(params, at.name)
            row = run_case(config, store, params)
            case = store.read_case(row["case_id"])
            self.cpu.append(float(row.get("cpu_seconds") or 0.0))
            final = case.plane[-1].to(torch.float64)
            planes.append(restrict_plane(final, band_weights(case.scenario), refinement_factor(h_s, at.cell_size)))
            scenarios.append(surrogate_scenario(config, case.scenario))
        self.forcing, problem = batch_problems(scenarios)
        self.n_steps = problem.n_steps
        self.final = torch.stack(planes)

    def errors(self, model) -> np.ndarray:
        """Relative L2 of each test case's plane at the final time (predicted at the top level)."""
        with torch.no_grad():
            pred = model.rollout(self.forcing, self.n_steps)[:, -1]
        num = (pred - self.final).flatten(1).norm(dim=1)
        return (num / self.final.flatten(1).norm(dim=1).clamp_min(1e-30)).numpy()


def level_correlation(config: CampaignConfig, work: Path, test: TestSet) -> dict:
    """How much the cheap level says about the top one: the test points at every other level (their
    final planes on the surrogate grid); Pearson r with the top level's planes, pooled over every cell
    of every test case and case by case, and the relative L2 gap."""
    out = {}
    high = test.final.flatten(1).numpy()
    for level in config.fidelity[:-1]:
        low = TestSet(config, work, len(test.points), points=test.points, level=level.name).final.flatten(1).numpy()
        per_case = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(low, high)]
        gap = np.linalg.norm(low - high, axis=1) / np.linalg.norm(high, axis=1)
        out[level.name] = {"against": config.fidelity[-1].name,
                           "pearson_r_pooled": float(np.corrcoef(low.ravel(), high.ravel())[0, 1]),
                           "pearson_r_by_case_median": float(np.median(per_case)),
                           "pearson_r_by_case_min": float(np.min(per_case)),
                           "relative_l2_mean": float(gap.mean()), "cases": len(per_case)}
    return out


def arm_config(base: CampaignConfig, arm: str, seed: int, budget: float | None) -> CampaignConfig:
    over = dict(ARMS[arm])
    plan = over.pop("fidelity_plan")
    if ARMS[arm]["planner.strategy"] == "multifidelity" and budget is not None:
        plan = {**plan, "round_cpu_seconds": budget / (ROUNDS - 1)}
    data = base.with_overrides(seed=seed, **{"budget.rounds": ROUNDS, **LEARNER, **over}).model_dump(mode="json")
    data["fidelity_plan"] = plan
    data["budget"]["max_cpu_seconds"] = budget
    return CampaignConfig.model_validate(data)


def run_arm(config: CampaignConfig, store: CampaignStore, test: TestSet) -> dict:
    """The campaign round by round; the test error and spend after each round's retrain."""
    cached = store.root / "result.json"
    done = json.loads(cached.read_text()) if cached.exists() else {}
    if done.get("config_hash") == config.config_hash():
        return done
    for sub in ("ledger.parquet", "models", "figures"):
        path = store.root / sub
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    store = CampaignStore(store.root)
    curve, rounds, latency = [], [], []
    reason = None
    for r in range(config.budget.rounds):
        t0 = time.perf_counter()
        params, proposal = steps.round_proposals(config, store, r)
        latency.append(time.perf_counter() - t0)
        record_outcomes(store, [run_case(config, store, p) for p in params])
        steps.validate_cases(config, store, r)
        steps.retrain_round(config, store, r, steps.training_set(store.read_ledger(), r))
        ledger = store.read_ledger()
        err = test.errors(load_model(store.load_checkpoint(steps.model_name(r))))
        curve.append({"round": r, "cpu_seconds": ledger.cases.spend(), "mean": float(err.mean()),
                      "p95": float(np.percentile(err, 95)), "by_level": spend_by_level(config, ledger)})
        rounds.append({"round": r, "strategy": proposal.strategy if proposal else None, "cases": params})
        print(f"  round {r}: {len(params)} cases, {curve[-1]['cpu_seconds']:.1f} CPU-s, "
              f"test mean {curve[-1]['mean']:.4f} p95 {curve[-1]['p95']:.4f}", flush=True)
        reason = steps.stop_reason(config, ledger, r)
        if reason:
            break
    out = {"config_hash": config.config_hash(), "curve": curve, "rounds": rounds, "stop_reason": reason,
           "proposal_seconds": latency}
    cached.write_text(json.dumps(out))
    return out


def fit_errors(base: CampaignConfig, work: Path, runs: dict[str, dict[int, dict]]) -> dict:
    """The floor the data cannot move: Sobol-top's final model on its own 32 training cases (the
    test's metric), beside its test error. A model that fits its training cases no better than it
    predicts new ones is limited by what it can represent, not by which cases it saw."""
    out = {}
    for seed, run in runs["sobol_top"].items():
        config = arm_config(base, "sobol_top", seed, None)
        store = CampaignStore(work / run_name("sobol_top", seed))
        points = config.design.space().as_tensor(store.read_ledger().cases.done().cases.params())
        fit = TestSet(config, work, len(points), points=points)
        last = run["curve"][-1]
        err = fit.errors(load_model(store.load_checkpoint(steps.model_name(last["round"]))))
        out[str(seed)] = {"cases": len(points), "fit_mean": float(err.mean()), "fit_p95": float(np.percentile(err, 95)),
                          "test_mean": last["mean"], "test_p95": last["p95"]}
    return out


def cost_to_reach(curve: list[dict], key: str, target: float) -> float | None:
    """CPU-seconds at the first round whose ``key`` error is at or below ``target``."""
    for point in curve:
        if point[key] <= target + 1e-12:
            return point["cpu_seconds"]
    return None


def headline(runs: dict[str, dict[int, dict]], top_level: str) -> dict:
    seeds = {}
    for seed, top in runs["sobol_top"].items():
        final = top["curve"][-1]
        b = final["cpu_seconds"]
        entry = {"budget_cpu_seconds": b, "sobol_top_final_mean": final["mean"], "sobol_top_final_p95": final["p95"],
                 # the control: where Sobol-top's own curve first reaches its final errors (1.0 = only at the end)
                 "sobol_top_self": {f"cost_fraction_{k}": cost_to_reach(top["curve"], k, final[k]) / b
                                    for k in ("mean", "p95")}}
        for arm, by_seed in runs.items():
            if arm == "sobol_top" or seed not in by_seed:
                continue
            curve = by_seed[seed]["curve"]
            reach = {k: cost_to_reach(curve, k, final[k]) for k in ("mean", "p95")}
            entry[arm] = {f"cost_fraction_{k}": None if v is None else v / b for k, v in reach.items()}
            by_level = curve[-1]["by_level"]
            entry[arm].update({"final_mean": curve[-1]["mean"], "final_p95": curve[-1]["p95"],
                               "final_cpu_seconds": curve[-1]["cpu_seconds"],
                               # the known failure of cost-aware planners: stuck at the cheap level
                               "top_level_cpu_share": by_level[top_level]["cpu_seconds"]
                               / max(sum(v["cpu_seconds"] for v in by_level.values()), 1e-12),
                               "cases_by_level": {k: v["cases"] for k, v in by_level.items()}})
        seeds[str(seed)] = entry

    def worst(arm: str, k: str) -> float | None:
        vals = [s[arm][f"cost_fraction_{k}"] for s in seeds.values() if arm in s]
        return None if not vals or any(v is None for v in vals) else max(vals)

    mf = "multifidelity"
    out = {"cost_fraction_mean": worst(mf, "mean"), "cost_fraction_p95": worst(mf, "p95"), "seeds": seeds}
    out["met"] = (out["cost_fraction_mean"] is not None and out["cost_fraction_p95"] is not None
                  and max(out["cost_fraction_mean"], out["cost_fraction_p95"]) <= 0.5)
    out["by_arm"] = {arm: {k: worst(arm, k) for k in ("mean", "p95")} for arm in runs if arm != "sobol_top"}
    return out


def ablation(base: CampaignConfig, work: Path, test: TestSet, runs: dict[str, dict[int, dict]], seed: int) -> dict:
    """The learner at equal CPU-seconds without warm-start stalls: for each arm, the cases of its rounds
    that fit within B/2 (B/2 and B for sobol_top), trained cold (the initial model, the full
    ``surrogate.epochs`` schedule, ``retrain_round`` of round 0) and scored on the test set."""
    cache = work / f"ablation{TAG}-{seed}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    budget = runs["sobol_top"][seed]["curve"][-1]["cpu_seconds"]
    out = {}
    for arm in runs:
        src = CampaignStore(work / run_name(arm, seed))
        ledger = src.read_ledger()
        for share in ((0.5, 1.0) if arm == "sobol_top" else (0.5,)):
            curve = runs[arm][seed]["curve"]
            last = max([p["round"] for p in curve if p["cpu_seconds"] <= share * budget + 1e-9], default=None)
            if last is None:
                continue
            rows = ledger[(ledger["round"] <= last) & (ledger["status"] == "done")]
            dest = shared_store(work, f"ablation-{run_name(arm, seed)}-{share}")
            shutil.rmtree(dest.models_dir, ignore_errors=True)
            dest = CampaignStore(dest.root)
            dest.upsert([{k: v for k, v in row.items() if v == v} for row in rows.to_dict("records")])
            config = arm_config(base, arm, seed, None)
            steps.retrain_round(config, dest, 0, rows["case_id"].tolist())
            err = test.errors(load_model(dest.load_checkpoint(steps.model_name(0))))
            out[f"{arm}@{share}"] = {"cases": len(rows), "cpu_seconds": rows.cases.spend(), "mean": float(err.mean()),
                                     "p95": float(np.percentile(err, 95)),
                                     "by_level": spend_by_level(config, rows)}
            print(f"  ablation {arm}@{share}: {out[f'{arm}@{share}']}", flush=True)
    cache.write_text(json.dumps(out))
    return out


def unchanged_rounds(work: Path, arm: str, seed: int) -> list[int]:
    """Rounds whose retrain kept the previous round's weights (no epoch beat the starting loss)."""
    store = CampaignStore(work / run_name(arm, seed))
    out, before = [], None
    for r in range(ROUNDS):
        try:
            state = store.load_checkpoint(steps.model_name(r))["state_dict"]
        except (FileNotFoundError, KeyError, ValueError):
            break
        if before is not None and all(torch.equal(state[k], before[k]) for k in state):
            out.append(r)
        before = state
    return out


def grid_check(config: CampaignConfig, work: Path, n: int = 2) -> dict:
    """Two test points at 0.125 m (TVD + SSP-RK2): final-time relative L2 of each level's plane
    against it, all restricted onto the 0.5 m grid."""
    cache = work / f"grid_check{TAG}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    space = config.design.space()
    pool = random_design(space, 64, seed=TEST_SEED + 1)
    points = space.as_dicts(pool[feasible_mask(config, pool)][:n])
    h_s = float(config.scenario.room.cell_size)
    rows = []
    for params in points:
        ref = scenario_for(config, with_level(params, config.fidelity[-1].name)).with_parameters({"room.cell_size": 0.125})
        t0 = time.process_time()
        result = simulate(ref, device="cpu")
        finest = restrict_plane(result.plane[-1].to(torch.float64), band_weights(ref), refinement_factor(h_s, 0.125))
        row = {"point": params, "finest_cpu_seconds": time.process_time() - t0}
        for level in config.fidelity:
            sc = scenario_for(config, with_level(params, level.name))
            plane = restrict_plane(simulate(sc, device="cpu").plane[-1].to(torch.float64), band_weights(sc),
                                   refinement_factor(h_s, level.cell_size))
            row[level.name] = float((plane - finest).norm() / finest.norm())
        rows.append(row)
    out = {"finest_cell_size": 0.125, "cases": rows,
           "mean": {lv.name: float(np.mean([r[lv.name] for r in rows])) for lv in config.fidelity}}
    cache.write_text(json.dumps(out))
    return out


def proposal_latency(config: CampaignConfig) -> dict:
    """One MF proposal (q = 4) from 200 observed points (100 per level) with a synthetic error."""
    from closedloop.planners.strategies import Evidence, PlannerSettings, make_strategy
    space = config.design.space()
    x = random_design(space, 200, seed=5)
    s = torch.cat([torch.zeros(100), torch.ones(100)]).to(torch.float64)
    y = torch.log(0.1 + 0.05 * torch.sin(3 * space.to_unit(x)[:, 0]) + 0.05 * (1 - s))
    cost = torch.tensor([0.1, 2.5], dtype=torch.float64)
    ev = Evidence(observed=x, log_error=y, existing=x, observed_fidelity=s, existing_fidelity=s, levels=(0.0, 1.0),
                  level_cost=lambda z: cost.expand(len(z), 2), feasible=lambda z: feasible_mask(config, z))
    strat = make_strategy("multifidelity", PlannerSettings(candidates=256), seed=1)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = strat.propose(space, 4, ev)
        times.append(time.perf_counter() - t0)
    return {"q": 4, "observed": 200, "dims": space.dim, "seconds": times, "median_s": float(np.median(times)),
            "levels_chosen": out[:, -1].tolist()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--test-cases", type=int, default=24)
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "data" / "multifidelity")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--name", default="multifidelity")
    ap.add_argument("--no-grid-check", action="store_true")
    ap.add_argument("--cheap", choices=sorted(CHEAP_LEVELS), default="coarse", help="the cheap level (see CHEAP_LEVELS)")
    ap.add_argument("--ablation", type=lambda v: [int(x) for x in v.split(",")], default=None,
                    help="seeds (e.g. 0) whose arms are also fitted cold on their cases at B/2 (see ablation)")
    ap.add_argument("--quick", action="store_true", help="driver check: 3 rounds, 2/1 epochs (not a result)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = with_cheap_level(load_campaign_config(CONFIG), args.cheap)
    if args.quick:
        global ROUNDS
        ROUNDS = 3
        base = base.with_overrides(**{"surrogate.epochs": 2, "surrogate.warm_start_epochs": 1})
    t_start = time.perf_counter()
    test = TestSet(base, args.work, args.test_cases)
    print(f"test set: {len(test.points)} fine cases, {sum(test.cpu):.1f} CPU-s", flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = ["sobol_top"] + [a for a in args.arms.split(",") if a != "sobol_top"]
    runs: dict[str, dict[int, dict]] = {a: {} for a in arms}
    for seed in seeds:
        budget = None
        for arm in arms:
            print(f"{arm} seed {seed}", flush=True)
            config = arm_config(base, arm, seed, budget if arm != "sobol_top" else None)
            runs[arm][seed] = run_arm(config, shared_store(args.work, run_name(arm, seed)), test)
            if arm == "sobol_top":
                budget = runs[arm][seed]["curve"][-1]["cpu_seconds"]
    head = headline(runs, base.fidelity[-1].name)
    cold = {str(seed): ablation(base, args.work, test, runs, seed) for seed in args.ablation} if args.ablation else None
    payload = {"headline": head, "runs": {a: {str(s): r for s, r in v.items()} for a, v in runs.items()},
               "latency": proposal_latency(base), "test_set": {"cases": len(test.points), "seed": TEST_SEED,
                                                                "cpu_seconds": sum(test.cpu)},
               "grid_check": None if args.no_grid_check else grid_check(base, args.work),
               "level_correlation": level_correlation(base, args.work, test),
               "fit_errors": fit_errors(base, args.work, runs) if "sobol_top" in runs else None,
               "ablation": cold,
               "unchanged_rounds": {a: {str(s): unchanged_rounds(args.work, a, s) for s in v} for a, v in runs.items()},
               "protocol": {"config": "configs/multifidelity.toml", "rounds": ROUNDS, "arms": ARMS, "seeds": seeds,
                            "cheap_level": base.fidelity[0].model_dump(mode="json"),
                            "learner": LEARNER,
                            "error": "relative L2 of the plane at the final time vs the fine (top) reference"},
               "wall_seconds": time.perf_counter() - t_start, "machine": machine()}
    path = write_result(args.name, payload, args.results)
    print(json.dumps({k: head[k] for k in ("cost_fraction_mean", "cost_fraction_p95", "met")}), "->", path)
    for seed, entry in head["seeds"].items():
        print(seed, json.dumps(entry))


if __name__ == "__main__":
    main()
