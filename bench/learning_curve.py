"""Learning curves of the library's learner: held-out test error against the cases a campaign has.

Does each round's new data make the model better? For each space, Sobol designs grow round by round
as the campaign grows them (the library's own steps: ``round_proposals``, ``run_case``,
``validate_cases``, ``retrain_round``, with the config's ``[surrogate]`` as shipped), and after each
round the model is judged on a fixed held-out test set (uniform random feasible points of their own
seed, never proposed by a planner), by relative L2 over the horizon and at the final time: mean, p95
and max over the test set. Also per round: whether training kept its starting weights, and its seconds.

- ``office``: configs/active_learning.toml (small office, 4 dimensions), 8 → 32 cases.
- ``mf_top``: configs/multifidelity.toml's space at its top level only (0.25 m cells, 5 dimensions,
  no fidelity levels), 8 → 32 cases.
- ``hall``: configs/hall.toml's space (3 dimensions), 8 → 24 cases.

The control repeats each round's warm start on round 0's cases only (no new data), so the gain of
the curve is shown to come from the data, not from more epochs. ``hall_campaign`` runs
configs/hall.toml as shipped (its own planner) through the campaign flow and judges each round's
checkpoint on the hall's test set. ``smoke`` runs configs/smoke.toml (``make demo``) through the flow
and reports its final round's mean validation error.

Every campaign directory, case and checkpoint lives under ``--work`` (default bench/data/learning_curve;
cases shared within a space), so a run stopped anywhere resumes where it stopped, and the result file
is rewritten after every round with what is done so far.

    .venv/bin/python bench/learning_curve.py --spaces office --seeds 0,1,2
    .venv/bin/python bench/learning_curve.py --spaces hall,hall_campaign,smoke --seeds 11
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import CampaignConfig, load_campaign_config
from closedloop.lab.store import CampaignStore
from closedloop.surrogates import relative_l2

from active_learning_parts.heldout import HeldOut, held_out, shared_store
from common import RESULTS, machine, write_result

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs"
TEST_SEED = 2026
# space -> (config, cases at the end, overrides on top of the config)
SPACES: dict[str, tuple[str, int, dict[str, Any]]] = {
    "office": ("active_learning.toml", 32, {}),
    "mf_top": ("multifidelity.toml", 32, {"fidelity": [], "scenario.room.cell_size": 0.25,
                                          "budget.max_cpu_seconds": None}),
    "hall": ("hall.toml", 24, {}),
}
FLOWS = ("hall_campaign", "smoke")


def space_config(space: str, seed: int) -> CampaignConfig:
    """The space's campaign as shipped, with a Sobol planner, the seed and rounds up to its cases."""
    name, cases, extra = SPACES[space]
    config = load_campaign_config(CONFIGS / name)
    data = config.model_dump(mode="json")
    if "fidelity" in extra:  # the top level alone: no levels, no plan
        data["fidelity"] = []
        data.pop("fidelity_plan", None)
        data["planner"]["strategy"] = "sobol"
        config = CampaignConfig.model_validate(data)
    b = config.budget
    rounds = 1 + math.ceil((cases - b.initial_cases) / b.batch_size)
    over = {k: v for k, v in extra.items() if k != "fidelity"}
    return config.with_overrides(seed=seed, **{"planner.strategy": "sobol", "budget.rounds": rounds,
                                               "budget.max_cases": cases, "budget.error_target": None,
                                               "budget.patience": None, **over})


def test_errors(test: HeldOut, model: torch.nn.Module) -> dict[str, float]:
    """Relative L2 of each test case over the horizon and at the final time: mean, p95 and max."""
    with torch.no_grad():
        pred = model.rollout(test.forcing, test.n_steps)
    horizon = relative_l2(pred[:, 1:], test.planes[:, 1:]).numpy()
    final = relative_l2(pred[:, -1:], test.planes[:, -1:]).numpy()
    return {"mean": float(horizon.mean()), "p95": float(np.percentile(horizon, 95)), "max": float(horizon.max()),
            "final_mean": float(final.mean()), "final_p95": float(np.percentile(final, 95)),
            "final_max": float(final.max())}


def training_summary(store: CampaignStore, round_index: int) -> dict[str, Any]:
    return store.load_checkpoint(steps.model_name(round_index))["training"]


def run_round(config: CampaignConfig, store: CampaignStore, r: int) -> None:
    """Round ``r`` as the campaign flow runs it (each step skips what is already on file)."""
    if steps.round_complete(store, r):
        return
    batch, _ = steps.round_proposals(config, store, r)
    steps.record_outcomes(store, [steps.run_case(config, store, p) for p in batch])
    steps.validate_cases(config, store, r)
    steps.retrain_round(config, store, r, steps.training_set(store.read_ledger(), r))


def control_round(config: CampaignConfig, store: CampaignStore, control: CampaignStore, r: int) -> None:
    """Round ``r``'s training on round 0's cases only, warm-started from the control's round r − 1."""
    if steps.round_complete(control, r):
        return
    if r == 0:
        control.save_checkpoint(steps.model_name(0), store.load_checkpoint(steps.model_name(0)))
        return
    if control.read_ledger().empty:
        ledger = store.read_ledger()
        control.upsert(ledger[ledger["round"] == 0].to_dict("records"))
    steps.retrain_round(config, control, r, steps.training_set(control.read_ledger(), 0))


def sobol_run(space: str, seed: int, work: Path, test: HeldOut, on_round) -> dict[str, Any]:  # noqa: ANN001
    config = space_config(space, seed)
    store = shared_store(work, f"sobol_{seed}")
    control = shared_store(work, f"control_{seed}")
    run: dict[str, Any] = {"n": [], "test": [], "control_test": [], "kept_start": [], "train_s": [],
                           "training": []}
    for r in range(config.budget.rounds):
        t0 = time.perf_counter()
        run_round(config, store, r)
        model = steps.model_for_round(config, store, r, [])
        summary = training_summary(store, r)
        run["n"].append(int((store.read_ledger()["status"] == "done").sum()))
        run["test"].append(test_errors(test, model))
        run["kept_start"].append(bool(summary["kept_start"]))
        run["train_s"].append(float(summary["seconds"]))
        run["training"].append(summary)
        control_round(config, store, control, r)
        run["control_test"].append(test_errors(test, steps.model_for_round(config, control, r, [])))
        print(f"{space} seed {seed} round {r}: n={run['n'][-1]} test mean {run['test'][-1]['mean']:.4f} "
              f"p95 {run['test'][-1]['p95']:.4f} (control {run['control_test'][-1]['mean']:.4f}); training "
              f"{summary['seconds']:.0f} s, best epoch {summary['best_epoch']}; round {time.perf_counter() - t0:.0f} s",
              flush=True)
        on_round(run)
    return run


def curve_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Seed means by cases, the spread, the fitted exponent and the largest rise over the spread."""
    n = runs[0]["n"]
    rounds = min(len(r["test"]) for r in runs)
    out: dict[str, Any] = {"seeds": len(runs), "n": n[:rounds]}
    for key in ("mean", "p95", "max", "final_mean", "final_p95", "final_max"):
        values = np.array([[r["test"][i][key] for i in range(rounds)] for r in runs])
        out[f"{key}_by_cases"] = dict(zip(map(str, n[:rounds]), values.mean(axis=0).tolist()))
    means = np.array([[r["test"][i]["mean"] for i in range(rounds)] for r in runs])
    control = np.array([[r["control_test"][i]["mean"] for i in range(rounds)] for r in runs])
    spread = means.std(axis=0, ddof=1) if len(runs) > 1 else np.full(rounds, np.nan)
    curve = means.mean(axis=0)
    rises = np.diff(curve)
    out["seed_spread_by_cases"] = dict(zip(map(str, n[:rounds]), spread.tolist()))
    out["control_mean_by_round"] = control.mean(axis=0).tolist()
    out["max_rise"] = float(rises.max()) if rounds > 1 else None
    out["max_rise_over_seed_spread"] = (float(max(rises / spread[1:])) if rounds > 1 and len(runs) > 1 else None)
    if rounds > 1:
        slope = np.polyfit(np.log(np.array(n[:rounds], dtype=float)), np.log(curve), 1)[0]
        out["exponent"] = float(slope)
    out["rounds_unchanged"] = int(sum(sum(r["kept_start"][1:rounds]) for r in runs))
    out["rounds_trained"] = int(sum(len(r["kept_start"][1:rounds]) for r in runs))
    out["initial_fits_unchanged"] = int(sum(r["kept_start"][0] for r in runs))
    out["training_s_by_round"] = np.array([[r["train_s"][i] for i in range(rounds)] for r in runs]).mean(0).tolist()
    out["final_vs_round0"] = float(curve[-1] / curve[0])
    out["control_final_vs_round0"] = float(control.mean(axis=0)[-1] / control.mean(axis=0)[0])
    return out


def flow_campaign(config_file: Path, out: Path) -> CampaignStore:
    """Run (or continue) a shipped config through the campaign flow itself."""
    from prefect.testing.utilities import prefect_test_harness

    from closedloop.flows.campaign import campaign

    with prefect_test_harness(server_startup_timeout=180):
        campaign(str(config_file), str(out))
    return CampaignStore(out)


def hall_campaign(work: Path, test: HeldOut) -> dict[str, Any]:
    """configs/hall.toml as shipped (its own planner): each round's model on the hall's test set."""
    config = load_campaign_config(CONFIGS / "hall.toml")
    store = flow_campaign(CONFIGS / "hall.toml", work / "hall_campaign")
    ledger = store.read_ledger()
    rounds = [r for r in range(config.budget.rounds) if steps.round_complete(store, r)]
    tests = [test_errors(test, steps.model_for_round(config, store, r, [])) for r in rounds]
    return {"strategy": config.planner.strategy, "seed": config.seed,
            "n": [int(((ledger["round"] <= r) & (ledger["status"] == "done")).sum()) for r in rounds],
            "heldout_mean_by_round": [t["mean"] for t in tests], "heldout_p95_by_round": [t["p95"] for t in tests],
            "heldout_final_mean_by_round": [t["final_mean"] for t in tests],
            "validation_mean_by_round": [float(ledger[ledger["round"] == r]["rel_l2"].mean()) for r in rounds],
            "training": [training_summary(store, r) for r in rounds]}


def smoke(work: Path) -> dict[str, Any]:
    """``make demo``: configs/smoke.toml through the flow; each round's mean validation error."""
    config = load_campaign_config(CONFIGS / "smoke.toml")
    t0 = time.perf_counter()
    store = flow_campaign(CONFIGS / "smoke.toml", work / "smoke")
    ledger = store.read_ledger()
    by_round = [float(ledger[ledger["round"] == r]["rel_l2"].mean()) for r in range(config.budget.rounds)]
    return {"validation_mean_by_round": by_round, "final_validation_mean": by_round[-1],
            "validation_by_case": ledger[["round", "case_id", "rel_l2"]].to_dict("records"),
            "training": [training_summary(store, r) for r in range(config.budget.rounds)],
            "wall_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", type=lambda s: s.split(","), default=["office"],
                    help=f"comma-separated, of {', '.join([*SPACES, *FLOWS])}")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--test-cases", type=int, default=24)
    ap.add_argument("--work", type=Path, default=HERE / "data" / "learning_curve")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--name", default="learning_curve")
    args = ap.parse_args(argv)
    unknown = set(args.spaces) - set(SPACES) - set(FLOWS)
    if unknown:
        ap.error(f"--spaces: unknown {sorted(unknown)}")
    path = args.results / f"{args.name}.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    result.update({"description": __doc__.splitlines()[0], "machine": machine(), "test_seed": TEST_SEED,
                   "test_cases": args.test_cases})
    result.setdefault("commands", {})

    def save() -> None:
        write_result(args.name, result, args.results)

    command = "python bench/learning_curve.py " + " ".join(argv if argv is not None else os.sys.argv[1:])
    for space in args.spaces:
        result["commands"][space] = command
        if space == "smoke":
            result["smoke"] = smoke(args.work)
            save()
            continue
        base = "hall" if space == "hall_campaign" else space
        work = args.work / base
        test = held_out(space_config(base, args.seeds[0]), work, args.test_cases, TEST_SEED)
        if space == "hall_campaign":
            result["hall_campaign"] = hall_campaign(args.work, test)
            save()
            continue
        runs = result.setdefault(space, {}).setdefault("runs", {})
        for seed in args.seeds:
            def on_round(run: dict[str, Any], seed: int = seed) -> None:
                runs[str(seed)] = run
                done = [runs[k] for k in sorted(runs)]
                result[space].update(curve_summary(done))
                save()
            sobol_run(space, seed, work, test, on_round)
    save()


if __name__ == "__main__":
    main()
