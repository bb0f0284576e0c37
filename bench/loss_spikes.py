"""Why the old retraining jumped around, and what the learner changed: an ablation on the smoke space.

Round 0 of configs/smoke.toml's space (its 4 Sobol cases, seed 7) is fitted by each variant, a set
of ``[surrogate]`` overrides on the shipped config, through the library's own schedule
(``SurrogateConfig.schedule`` and ``train_stages``); then round 1 (4 more Sobol cases) is a warm start
from the learner's round-0 model, in several variants. Each fit reports its training losses per
epoch, the largest rise above its start (``peak_over_start``) and above the best so far
(``largest_spike``), whether it kept its starting weights, and its test error on 12 held-out cases
(relative L2 over the horizon). Everything is float64, so precision is not a variable here.

    .venv/bin/python bench/loss_spikes.py
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import CampaignConfig, load_campaign_config
from closedloop.surrogates.coupling import batch_problems
from closedloop.surrogates.training import train_stages

from active_learning_parts.heldout import held_out, shared_store
from common import machine, write_result

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "smoke.toml"
OLD = {"advection": "upwind", "learn_sink": False, "room_layers": False, "closure_form": "additive",
       "closure_gain": 1.0, "learning_rate": 3e-3, "batch_size": None, "physics_stage_epochs": 0, "epochs": 30,
       "warm_start_epochs": 15}  # the smoke config's surrogate before the learner
INITIAL = {
    "old": OLD,
    "old_lr_1e-3": {**OLD, "learning_rate": 1e-3},
    "old_batch_2": {**OLD, "batch_size": 2},
    "old_multiplicative": {**OLD, "closure_form": "multiplicative", "closure_gain": 0.05},
    "old_band_physics": {**OLD, "advection": "tvd", "learn_sink": True, "room_layers": True},
    "learner_no_physics_stage": {"physics_stage_epochs": 0},
    "learner_lr_3e-3": {"learning_rate": 3e-3},
    "learner": {},
}
WARM = {
    "fresh_4_epochs": {},
    "kept_optimizer": {"warm_start_optimizer": "kept"},
    "lr_3e-4": {"warm_start_learning_rate": 3e-4},
    "old_15_epochs_lr_3e-3": {"warm_start_epochs": 15, "warm_start_learning_rate": 3e-3},
    "cold_refit": None,  # the whole round-0 schedule from the untrained model on all 8 cases
}


def variant(config: CampaignConfig, settings: dict[str, Any]) -> CampaignConfig:
    return config.with_overrides(**{f"surrogate.{k}": v for k, v in settings.items()})


def fit(config: CampaignConfig, model: torch.nn.Module, cases: list, round_index: int,
        optimizer_state: dict | None = None) -> tuple[Any, float]:
    forcing, _ = batch_problems([c.scenario for c in cases])
    target = torch.stack([c.plane for c in cases]).to(torch.float64)
    t0 = time.perf_counter()
    report = train_stages(model, forcing, target, config.surrogate.schedule(round_index, config.seed + round_index),
                          optimizer_state=optimizer_state)
    return report, time.perf_counter() - t0


def row(report: Any, seconds: float, test_errors: torch.Tensor) -> dict[str, Any]:
    return {**report.summary(), "losses": report.losses, "seconds": seconds,
            "test_mean": float(test_errors.mean()), "test_max": float(test_errors.max())}


def main() -> None:
    work = HERE / "data" / "loss_spikes"
    base = load_campaign_config(CONFIG).with_overrides(**{"planner.strategy": "sobol", "budget.rounds": 2})
    test = held_out(base, work, 12, 2026)
    store = shared_store(work, "sobol")
    batches = []
    for r in range(2):
        batch, _ = steps.round_proposals(base, store, r)
        steps.record_outcomes(store, [steps.run_case(base, store, p) for p in batch])
        batches.append(steps.training_set(store.read_ledger(), r))
    round0, both = steps.load_cases(store, batches[0]), steps.load_cases(store, batches[1])
    result: dict[str, Any] = {"description": __doc__.splitlines()[0], "machine": machine(),
                              "command": "python bench/loss_spikes.py", "initial": {}, "warm": {}}
    learner_model = None
    for name, settings in INITIAL.items():
        config = variant(base, settings)
        model = steps.initial_model(config, [c.scenario for c in round0])
        report, seconds = fit(config, model, round0, 0)
        result["initial"][name] = row(report, seconds, test.errors(model))
        print(f"{name:28s} start {report.initial_loss:.4f} best {report.best_loss:.4f} peak/start "
              f"{report.peak_over_start:.2f} spike {report.largest_spike:.2f} test {result['initial'][name]['test_mean']:.4f}"
              f" ({seconds:.0f} s)", flush=True)
        if name == "learner":
            learner_model, learner_state = model, report.optimizer_state
    start = {k: v.clone() for k, v in learner_model.state_dict().items()}
    result["warm_start_test_mean"] = result["initial"]["learner"]["test_mean"]
    for name, settings in WARM.items():
        model = steps.initial_model(base, [c.scenario for c in both])
        if settings is None:
            report, seconds = fit(base, model, both, 0)
        else:
            model.load_state_dict(start)
            config = variant(base, settings)
            kept = learner_state if config.surrogate.warm_start_optimizer == "kept" else None
            report, seconds = fit(config, model, both, 1, optimizer_state=kept)
        result["warm"][name] = row(report, seconds, test.errors(model))
        print(f"warm {name:23s} start {report.initial_loss:.4f} best {report.best_loss:.4f} kept start "
              f"{report.kept_start} test {result['warm'][name]['test_mean']:.4f} ({seconds:.0f} s)", flush=True)
    write_result("loss_spikes", result)


if __name__ == "__main__":
    main()
