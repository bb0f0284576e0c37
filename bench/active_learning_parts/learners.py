"""The learner variants of the benchmark (benchmark-only): plain ``[surrogate]`` overrides on top of
configs/active_learning.toml; every round trains through the library's ``retrain_round`` and its
schedule (``SurrogateConfig.schedule``).

- ``learner`` (``--learner``): the config as shipped, which is the library's learner: room layers
  below and above the band, TVD advection, a learned sink, the multiplicative closure with gain 0.05;
  round 0 a physics stage (10 epochs, physics fields at 1e-2, all cases at once) then the closure
  stage (20 epochs at 1e-3 in mini-batches of 2), 4-epoch warm starts at 1e-3 over the whole horizon.
- ``default``: the surrogate this benchmark first used (the library's defaults before the learner):
  band-alone upwind physics, the additive closure, 20 epochs at 3e-3 on all cases at once, 8-epoch
  warm starts at 1e-3.
- ``stable`` (``--stable``): ``default`` with 10-epoch warm starts at 3e-4.

Round 0 of a seed is the same for every strategy (the same Sobol start, the same fit), so its
checkpoint is computed once and cached (:func:`initial_fit`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from closedloop.lab import campaign as steps
from closedloop.lab.atomic import atomic_path
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.surrogates.checkpoint import read_checkpoint, write_checkpoint


@dataclass(frozen=True)
class Learner:
    name: str
    surrogate: dict[str, Any] = field(default_factory=dict)  # [surrogate] overrides

    def configure(self, config: CampaignConfig, **surrogate: Any) -> CampaignConfig:
        """``config`` with this learner's surrogate settings (and ``surrogate``, e.g. epochs=2)."""
        settings = {**self.surrogate, **{k: v for k, v in surrogate.items() if v is not None}}
        return config.with_overrides(**{f"surrogate.{k}": v for k, v in settings.items()})

    def describe(self, config: CampaignConfig) -> str:
        """The surrogate line of the result's ``reductions``."""
        sc = config.surrogate
        warm_lr = sc.warm_start_learning_rate or sc.learning_rate
        model = (f"hybrid, hidden_channels={sc.hidden_channels}, {sc.advection}, "
                 + ("room layers, " if sc.room_layers else "") + ("learned sink, " if sc.learn_sink else "")
                 + f"{sc.closure_form} closure (gain {sc.closure_gain})")
        stage = f"physics stage {sc.physics_stage_epochs} epochs (lr {sc.physics_stage_learning_rate}), " \
            if sc.physics_stage_epochs else ""
        return (f"{model}; {stage}{sc.epochs} epochs initial (lr {sc.learning_rate}, mini-batches of "
                f"{sc.batch_size or 'all'}) + {sc.warm_start_epochs} warm-start epochs per round (lr {warm_lr}, "
                "5 warm-up steps, full horizon)")


OLD_DEFAULT = {"advection": "upwind", "learn_sink": False, "room_layers": False, "closure_form": "additive",
               "closure_gain": 1.0, "learning_rate": 3e-3, "batch_size": None, "physics_stage_epochs": 0,
               "warm_start_epochs": 8, "warm_start_learning_rate": 1e-3}
LEARNERS = {
    "default": Learner("default", OLD_DEFAULT),
    "stable": Learner("stable", {**OLD_DEFAULT, "warm_start_epochs": 10, "warm_start_learning_rate": 3e-4}),
    "learner": Learner("learner", {}),
}


def initial_key(learner: Learner, config: CampaignConfig) -> str:
    """What round 0's fit depends on: seed, scenario, design, initial cases, the surrogate (but its
    warm starts) and the learner's stages; not the planner."""
    warm = {"warm_start_epochs", "warm_start_learning_rate", "warm_start_curriculum", "warm_start_optimizer"}
    what = [learner.name, config.model_dump(mode="json", include={"seed", "scenario", "design"}),
            config.budget.initial_cases, config.surrogate.model_dump(mode="json", exclude=warm)]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def initial_fit(learner: Learner, config: CampaignConfig, store: CampaignStore, cache: Path) -> int:
    """Round 0's checkpoint in ``store``: from ``cache`` when a strategy of this seed fitted it
    already, else fitted (the library's ``retrain_round``) and cached.
    Returns the fit's best epoch (−1: no epoch beat the starting weights)."""
    path = cache / f"{config.seed}_{initial_key(learner, config)}.pt"
    if path.is_file():
        checkpoint = read_checkpoint(path)
        store.save_checkpoint(steps.model_name(0), checkpoint)
        return int(checkpoint["best_epoch"])
    best = steps.retrain_round(config, store, 0, steps.training_set(store.read_ledger(), 0)).best_epoch
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, label="checkpoint") as tmp:
        write_checkpoint(tmp, {**store.load_checkpoint(steps.model_name(0)), "best_epoch": best})
    return best


def train_round(learner: Learner, config: CampaignConfig, store: CampaignStore, round_index: int,
                cache: Path) -> int:
    """Round ``round_index``'s training on every done case; returns its best epoch."""
    if round_index == 0:
        return initial_fit(learner, config, store, cache)
    ids = steps.training_set(store.read_ledger(), round_index)
    return steps.retrain_round(config, store, round_index, ids).best_epoch


def complete_round(learner: Learner, config: CampaignConfig, store: CampaignStore, round_index: int,
                   batch: list[dict[str, float]], cache: Path) -> tuple[int, float]:
    """The round after its proposal, as the campaign flow runs it: simulate (a case on file is
    reused), validate the new cases with the previous model, train. Returns the training's best
    epoch and seconds."""
    steps.record_outcomes(store, [steps.run_case(config, store, params) for params in batch])
    steps.validate_cases(config, store, round_index)
    t0 = time.perf_counter()
    best = train_round(learner, config, store, round_index, cache)
    return best, time.perf_counter() - t0
