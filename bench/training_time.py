"""Training time per round against the cases, and held-out error, for two hall learners side by side.

Issue 24's question: does a round's training stay flat as the campaign's cases grow, without losing
accuracy on held-out cases? Every arm retrains the same Sobol cases of the hall (8 → 24 cases, seed
11, the layout of ``bench/learning_curve.py``'s ``sobol_11`` run: its ledger, cases and round-0
checkpoint are the start; made here when missing: the cases simulated, round 0 trained once), each
warm-start round through the library's own ``retrain_round``, the arms alternating round by round so
that the machine's noise falls on all:

- ``baseline``: configs/hall.toml's learner as shipped before (eager physics, every case each epoch,
  each epoch judged on every case: no ``warm_start_sample``);
- ``fused``: the same optimisation with the fused substep under autograd (``surrogate.compile``);
- ``fast``: fused, at most ``warm_start_batches`` mini-batches an epoch, each epoch judged on
  ``judge_cases`` cases;
- ``fast_wide``: ``fast`` with mini-batches twice as large (the same optimiser steps, every case of
  24 seen each epoch): tells fewer steps from fewer cases seen;
- ``sqrt_3``: fused, each warm epoch on the new cases and a fresh sample of the others,
  ⌈c √n⌉ cases in all (``warm_start_sample`` = c, configs/hall.toml's 3), judged on every case.

Per round: wall seconds of ``retrain_round`` (the fused substep compiled beforehand, untimed) and the
held-out error of the round's model (24 uniform random hall cases, ``learning_curve``'s test set).
Round 0 (the staged fit on 8 cases, ~25-40 min eager) is not retrained twice: ``round0_epoch_s``
times two epochs of each of its stages in both modes, side by side, and gives the ratio.

Everything is kept under ``--work`` (each arm a campaign directory sharing the cases): a stopped
run resumes at the first round not trained, and the result file is rewritten after each round.

    .venv/bin/python bench/training_time.py
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from closedloop.lab import campaign as steps
from closedloop.lab.campaign.learn import fused, load_cases, round_schedule
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.surrogates.coupling import batch_problems
from closedloop.surrogates.training import train_stages

from active_learning_parts.heldout import held_out, shared_store
from common import machine, write_result
from learning_curve import TEST_SEED, space_config, test_errors

HERE = Path(__file__).resolve().parent
SEED = 11
ROUNDS = 5  # 8, 12, 16, 20, 24 cases
SAMPLE_SCALES = (3.0,)  # c of the √n arm (configs/hall.toml's): every case while n ≤ 12 in mini-batches of 2


def arms(warm_batches: int, judge: int) -> dict[str, CampaignConfig]:
    base = space_config("hall", SEED).with_overrides(**{"surrogate.warm_start_sample": None})  # every case
    capped = {"surrogate.compile": True, "surrogate.warm_start_batches": warm_batches, "surrogate.judge_cases": judge}
    return {"baseline": base.with_overrides(**{"surrogate.compile": False}),
            "fused": base.with_overrides(**{"surrogate.compile": True}),
            "fast": base.with_overrides(**capped),
            "fast_wide": base.with_overrides(**capped, **{"surrogate.batch_size": 2 * base.surrogate.batch_size}),
            **{f"sqrt_{c:g}": base.with_overrides(**{"surrogate.compile": True, "surrogate.warm_start_sample": c})
               for c in SAMPLE_SCALES}}


def prepare_source(config: CampaignConfig, work: Path) -> CampaignStore:
    """The Sobol run the arms start from: every round's cases simulated (the library's own proposal and
    ``run_case``), round 0 trained. What is on file already (cases, checkpoint) is kept."""
    source = shared_store(work, f"sobol_{SEED}")
    for r in range(ROUNDS):
        batch, _ = steps.round_proposals(config, source, r)
        print(f"source round {r}: {len(batch)} cases (simulated unless on file)", flush=True)
        steps.record_outcomes(source, [steps.run_case(config, source, p) for p in batch])
    # a case is trained on once validated (learn.training_set): round 0's by the initial model
    steps.validate_cases(config, source, 0)
    if not steps.round_complete(source, 0):
        print("source round 0: the staged fit on 8 cases", flush=True)
        t0 = time.perf_counter()
        steps.retrain_round(config, source, 0, steps.training_set(source.read_ledger(), 0))
        print(f"source round 0 trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return source


def start_store(work: Path, name: str, source: CampaignStore) -> CampaignStore:
    """An arm's campaign directory: the source run's ledger and its round-0 checkpoint."""
    store = shared_store(work, name)
    if store.read_ledger().empty:
        store.upsert(source.read_ledger().to_dict("records"))
    if not steps.round_complete(store, 0):
        store.save_checkpoint(steps.model_name(0), source.load_checkpoint(steps.model_name(0)))
    return store


def round0_epochs(config: CampaignConfig, source: CampaignStore) -> dict[str, float]:
    """Seconds of round 0's two stages cut to two epochs each (closure stage on the whole horizon),
    eager and fused, from the same initial model on round 0's cases."""
    ids = steps.training_set(source.read_ledger(), 0)
    cases = load_cases(source, ids)
    scenarios = [c.scenario for c in cases]
    forcing, target = batch_problems(scenarios)[0], torch.stack([c.plane for c in cases]).double()
    stages = [dataclasses.replace(s, epochs=2, curriculum=(), physics_warmup_epochs=min(s.physics_warmup_epochs, 2))
              for s in round_schedule(config, 0)]
    out = {}
    for mode, on in (("eager", False), ("fused_first", True), ("fused", True)):
        model = steps.initial_model(config, scenarios)
        if on:
            model = fused(config.with_overrides(**{"surrogate.compile": True}), model, training=True)
        t0 = time.perf_counter()
        train_stages(model, forcing, target, stages)
        out[f"{mode}_s"] = time.perf_counter() - t0
        print(f"round 0, 2+2 epochs {mode}: {out[f'{mode}_s']:.1f} s", flush=True)
    out["ratio"] = out["eager_s"] / out["fused_s"]
    return out


def warm_compile(config: CampaignConfig, source: CampaignStore) -> None:
    """Compile the fused substep once (one epoch on two of round 0's cases, thrown away), so that no
    timed round pays the compilation."""
    cases = load_cases(source, steps.training_set(source.read_ledger(), 0)[:2])
    scenarios = [c.scenario for c in cases]
    model = fused(config, steps.initial_model(config, scenarios), training=True)
    stage = dataclasses.replace(round_schedule(config, 1)[0], epochs=1)
    train_stages(model, batch_problems(scenarios)[0], torch.stack([c.plane for c in cases]).double(), [stage])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=HERE / "data" / "learning_curve" / "hall")
    ap.add_argument("--warm-batches", type=int, default=6, help="fast arm: mini-batches per warm epoch")
    ap.add_argument("--judge-cases", type=int, default=8, help="fast arm: cases each epoch is judged on")
    ap.add_argument("--name", default="training_time")
    args = ap.parse_args(argv)
    if os.environ.get("CLOSEDLOOP_COMPILE"):
        ap.error("unset CLOSEDLOOP_COMPILE: the arms say themselves whether they compile")
    configs = arms(args.warm_batches, args.judge_cases)
    source = prepare_source(configs["fused"], args.work)
    test = held_out(configs["baseline"], args.work, 24, TEST_SEED)
    result: dict[str, Any] = {
        "description": __doc__.splitlines()[0], "machine": machine(), "seed": SEED,
        "command": "python bench/training_time.py " + " ".join(argv if argv is not None else os.sys.argv[1:]),
        "arms": {arm: {"compile": c.surrogate.compile, "warm_start_batches": c.surrogate.warm_start_batches,
                       "judge_cases": c.surrogate.judge_cases, "batch_size": c.surrogate.batch_size,
                       "warm_start_sample": c.surrogate.warm_start_sample,
                       "warm_start_epochs": c.surrogate.warm_start_epochs} for arm, c in configs.items()},
        "hall": {}}
    path = HERE / "results" / f"{args.name}.json"
    stores = {arm: start_store(args.work, f"time_{arm}_{SEED}", source) for arm in configs}
    runs = {arm: {"n": [], "training_s_by_round": [], "heldout_mean_by_round": [], "heldout_p95_by_round": []}
            for arm in configs}
    model0 = steps.model_for_round(configs["baseline"], source, 0, [])
    t0 = test_errors(test, model0)
    if not all(steps.round_complete(stores[arm], ROUNDS - 1) for arm in configs):
        warm_compile(configs["fused"], source)
    for r in range(ROUNDS):
        for arm, config in configs.items():
            store = stores[arm]
            wall = None
            if r > 0:
                marker = store.root / f"round_{r:03d}.seconds"
                if not steps.round_complete(store, r):
                    steps.validate_cases(config, store, r)  # by round r − 1's model, not timed
                    t_start = time.perf_counter()
                    steps.retrain_round(config, store, r, steps.training_set(store.read_ledger(), r))
                    marker.write_text(str(time.perf_counter() - t_start))
                wall = float(marker.read_text()) if marker.exists() else None
            errors = t0 if r == 0 else test_errors(test, steps.model_for_round(config, store, r, []))
            run = runs[arm]
            ledger = store.read_ledger()
            run["n"].append(int(((ledger["round"] <= r) & (ledger["status"] == "done")).sum()))
            run["training_s_by_round"].append(wall)
            run["heldout_mean_by_round"].append(errors["mean"])
            run["heldout_p95_by_round"].append(errors["p95"])
            print(f"{arm} round {r}: n={run['n'][-1]} training {wall} s, held-out mean {errors['mean']:.4f}", flush=True)
        result["hall"] = runs
        write_result(args.name, result)
    warm = {arm: runs[arm]["training_s_by_round"][1:] for arm in configs}
    n = runs["fast"]["n"][1:]
    result["hall"]["warm_growth"] = {arm: (s[-1] / s[0]) for arm, s in warm.items()}
    result["hall"]["cases_growth"] = n[-1] / n[0]
    result["hall"]["sqrt_cases_growth"] = (n[-1] / n[0]) ** 0.5
    result["hall"]["warm_total_ratio"] = {arm: sum(warm["baseline"]) / sum(warm[arm]) for arm in configs}
    result["hall"]["final_heldout_ratio"] = {arm: runs[arm]["heldout_mean_by_round"][-1]
                                             / runs["baseline"]["heldout_mean_by_round"][-1] for arm in configs}
    result["round0_epochs"] = round0_epochs(configs["baseline"], source)
    write_result(args.name, result)
    print({k: v for k, v in result["hall"].items() if k not in configs}, result["round0_epochs"], flush=True)


if __name__ == "__main__":
    main()
