"""The learner variants of the benchmark (benchmark-only): ``[surrogate]`` settings on top of
configs/active_learning.toml, plus the two things the library's round schedule does not express.

- ``default``: the config's surrogate (hybrid, 4 channels, 20 epochs at 3e-3 on the initial design),
  warm starts of 8 epochs at 1e-3.
- ``stable`` (``--stable``): warm starts of 10 epochs at 3e-4.
- ``learner`` (``--learner``): room layers below and above the band, TVD advection, a learned sink
  and the multiplicative closure c·(1 + g·tanh M) with g = 0.05. Round 0 is a physics stage (closure
  frozen, physics fields at 1e-2, all cases at once, 10 epochs) followed by the closure stage, which
  is the library's round-0 schedule (mini-batches of 2 cases, physics fields at the closure's 1e-3,
  20 epochs); each warm start is 4 epochs of that schedule.

What the library lacks: a warm-start learning rate of its own (the library trains every round at
``surrogate.learning_rate``, so a warm start's round is given a config that carries the warm-start
rate, :meth:`Learner.round_config`) and the staged initial fit (:func:`staged_fit`). Every warm start
is the library's ``retrain_round``; unlike the old driver's default and stable learners, it ramps the
rate up over its first 5 optimiser steps (``TrainConfig.warmup_steps``).

Round 0 of a seed is the same for every strategy (the same Sobol start, the same fit), so its
checkpoint is computed once and cached (:func:`initial_fit`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from closedloop.lab import campaign as steps
from closedloop.lab.atomic import atomic_path
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore, now_iso
from closedloop.surrogates import train
from closedloop.surrogates.checkpoint import checkpoint_payload, read_checkpoint, write_checkpoint
from closedloop.surrogates.coupling import batch_problems


@dataclass(frozen=True)
class Learner:
    name: str
    surrogate: dict[str, Any] = field(default_factory=dict)  # [surrogate] overrides
    warm_learning_rate: float | None = None  # None: the config's surrogate.learning_rate
    physics_stage_epochs: int = 0  # > 0: round 0 is staged_fit
    physics_stage_learning_rate: float = 1e-2

    def configure(self, config: CampaignConfig, **surrogate: Any) -> CampaignConfig:
        """``config`` with this learner's surrogate settings (and ``surrogate``, e.g. epochs=2)."""
        settings = {**self.surrogate, **{k: v for k, v in surrogate.items() if v is not None}}
        return config.with_overrides(**{f"surrogate.{k}": v for k, v in settings.items()})

    def round_config(self, config: CampaignConfig, round_index: int) -> CampaignConfig:
        """The config round ``round_index`` trains with: the warm-start rate after round 0."""
        if round_index == 0 or self.warm_learning_rate is None:
            return config
        return config.with_overrides(**{"surrogate.learning_rate": self.warm_learning_rate})

    def describe(self, config: CampaignConfig) -> str:
        """The surrogate line of the result's ``reductions``."""
        sc = config.surrogate
        warm_lr = self.warm_learning_rate or sc.learning_rate
        if not self.physics_stage_epochs:
            return (f"hybrid, hidden_channels={sc.hidden_channels}, {sc.epochs} epochs initial (lr "
                    f"{sc.learning_rate}) + {sc.warm_start_epochs} warm-start epochs per round (lr {warm_lr}, "
                    "5 warm-up steps)")
        return (f"hybrid, hidden_channels={sc.hidden_channels}, room layers, TVD, learned sink, multiplicative "
                f"closure (gain {sc.closure_gain}); physics stage {self.physics_stage_epochs} epochs (physics lr "
                f"{self.physics_stage_learning_rate}, closure frozen), closure stage {sc.epochs} epochs, "
                f"{sc.warm_start_epochs} warm-start epochs per round (lr {sc.learning_rate}, mini-batches of "
                f"{sc.batch_size} cases, full horizon, TBPTT {sc.tbptt_steps})")


LEARNERS = {
    "default": Learner("default", warm_learning_rate=1e-3),
    "stable": Learner("stable", {"warm_start_epochs": 10}, warm_learning_rate=3e-4),
    "learner": Learner("learner", {"learn_sink": True, "vertical_exchange": True, "room_layers": True,
                                   "advection": "tvd", "closure_form": "multiplicative", "closure_gain": 0.05,
                                   "learning_rate": 1e-3, "physics_learning_rate": 1e-3, "batch_size": 2,
                                   "warm_start_epochs": 4}, physics_stage_epochs=10),
}


def staged_fit(learner: Learner, config: CampaignConfig, store: CampaignStore) -> int:
    """``--learner``'s round 0: the physics stage, then the library's round-0 schedule from there;
    written as round 0's checkpoint. Returns the closure stage's best epoch."""
    ids = steps.training_case_ids(store, 0)
    cases = steps.load_cases(store, ids)
    scenarios = [c.scenario for c in cases]
    forcing, _ = batch_problems(scenarios)
    target = torch.stack([c.plane for c in cases]).to(torch.float64)
    model = steps.initial_model(config, scenarios)
    closure = steps.round_train_config(config, 0)
    physics = dataclasses.replace(closure, epochs=learner.physics_stage_epochs, batch_size=None,
                                  physics_warmup_epochs=learner.physics_stage_epochs,
                                  physics_learning_rate=learner.physics_stage_learning_rate)
    train(model, forcing, target, physics)
    report = train(model, forcing, target, closure)
    store.save_checkpoint(steps.model_name(0), checkpoint_payload(
        model, trained_on=ids, round=0, losses=report.losses, initial_loss=report.initial_loss,
        best_loss=report.best_loss, config_hash=config.config_hash(), created=now_iso()))
    return report.best_epoch


def initial_key(learner: Learner, config: CampaignConfig) -> str:
    """What round 0's fit depends on: seed, scenario, design, initial cases, the surrogate (but its
    warm starts) and the learner's stages; not the planner."""
    what = [learner.name, learner.physics_stage_epochs, learner.physics_stage_learning_rate,
            config.model_dump(mode="json", include={"seed", "scenario", "design"}), config.budget.initial_cases,
            config.surrogate.model_dump(mode="json", exclude={"warm_start_epochs"})]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def initial_fit(learner: Learner, config: CampaignConfig, store: CampaignStore, cache: Path) -> int:
    """Round 0's checkpoint in ``store``: from ``cache`` when a strategy of this seed fitted it
    already, else fitted (the library's ``retrain_round``, or :func:`staged_fit`) and cached.
    Returns the fit's best epoch (−1: no epoch beat the starting weights)."""
    path = cache / f"{config.seed}_{initial_key(learner, config)}.pt"
    if path.is_file():
        checkpoint = read_checkpoint(path)
        store.save_checkpoint(steps.model_name(0), checkpoint)
        return int(checkpoint["best_epoch"])
    if learner.physics_stage_epochs:
        best = staged_fit(learner, config, store)
    else:
        best = steps.retrain_round(config, store, 0, steps.training_case_ids(store, 0)).best_epoch
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, label="checkpoint") as tmp:
        write_checkpoint(tmp, {**store.load_checkpoint(steps.model_name(0)), "best_epoch": best})
    return best


def train_round(learner: Learner, config: CampaignConfig, store: CampaignStore, round_index: int,
                cache: Path) -> int:
    """Round ``round_index``'s training on every done case; returns its best epoch."""
    if round_index == 0:
        return initial_fit(learner, config, store, cache)
    ids = steps.training_case_ids(store, round_index)
    return steps.retrain_round(learner.round_config(config, round_index), store, round_index, ids).best_epoch


def complete_round(learner: Learner, config: CampaignConfig, store: CampaignStore, round_index: int,
                   batch: list[dict[str, float]], cache: Path) -> tuple[int, float]:
    """The round after its proposal, as the campaign flow runs it: simulate (a case on file is
    reused), validate the new cases with the previous model, train. Returns the training's best
    epoch and seconds."""
    steps.record_outcomes(store, [steps.run_case(config, store, params) for params in batch])
    steps.validate_new_cases(config, store, round_index)
    t0 = time.perf_counter()
    best = train_round(learner, config, store, round_index, cache)
    return best, time.perf_counter() - t0
