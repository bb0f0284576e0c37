"""Probes beside the study (benchmark-only): the latency of one proposal, the control that gets no
new data, and the forward- vs central-difference check of the information sketch.

The control and the sketch check run round 0 of a campaign as the study does (its fit cached per
seed), then call the library's steps directly.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import torch

from closedloop.lab import campaign as steps
from closedloop.lab.campaign.propose import strategy_for
from closedloop.lab.config import CampaignConfig
from closedloop.planners.design import DesignSpace, random_design
from closedloop.planners.strategies import Evidence, PlannerSettings, make_strategy

from active_learning_parts.heldout import HeldOut, shared_store
from active_learning_parts.learners import Learner, complete_round


def latency(settings: PlannerSettings, dim: int, repeats: int = 2) -> dict:
    """Seconds for one proposal of q = 4 from 200 observed points in ``dim`` dimensions (GP fit included)."""
    space = DesignSpace(names=tuple(f"p{i}" for i in range(dim)), lower=(0.0,) * dim, upper=(1.0,) * dim)
    x = random_design(space, 200, seed=dim)
    g = torch.Generator().manual_seed(dim)
    y = (torch.sin(4 * x) * torch.linspace(1, 0.3, dim)).sum(dim=1) + 0.05 * torch.randn(200, generator=g,
                                                                                          dtype=torch.float64)
    out = {}
    for label, name, chosen in (
            ("error_qucb_lbfgs", "error", settings),
            ("error_qucb_pool", "error", dataclasses.replace(settings, optimizer="pool")),
            ("error_qlognei_pool", "error", dataclasses.replace(settings, acquisition="qlognei", optimizer="pool")),
            ("variance", "variance", settings)):
        times = []
        for k in range(repeats):
            strategy = make_strategy(name, chosen, seed=k)
            t0 = time.perf_counter()
            strategy.propose(space, 4, Evidence(observed=x, log_error=y, pending=random_design(space, 4, seed=99)))
            times.append(time.perf_counter() - t0)
        out[label] = {"median_s": statistics.median(times), "all_s": times}
    return out


def round_zero(learner: Learner, config: CampaignConfig, work: Path, name: str):
    """A fresh campaign directory ``work/name`` with round 0 done (the cached initial fit)."""
    store = shared_store(work, name, fresh=True)
    batch, _ = steps.round_proposals(config, store, 0)
    complete_round(learner, config, store, 0, batch, work / "initial")
    return store


def no_new_data(learner: Learner, config: CampaignConfig, test: HeldOut, work: Path) -> dict:
    """The control (``--control``): the same warm starts (same configs and seeds per round) on the
    initial cases only. What the Sobol curve gains beyond this is the new data; the rest is more training."""
    store = round_zero(learner, config, work, f"control/{config.seed}")
    ids = steps.training_set(store.read_ledger(), 0)
    out = {"test_mean": [float(test.errors(steps.model_for_round(config, store, 0, [])).mean())], "best_epoch": []}
    for r in range(1, config.budget.rounds):
        report = steps.retrain_round(config, store, r, ids)
        out["best_epoch"].append(report.best_epoch)
        out["test_mean"].append(float(test.errors(steps.model_for_round(config, store, r, [])).mean()))
    return out


def sketch_check(learner: Learner, config: CampaignConfig, work: Path) -> dict:
    """One ``information`` proposal from round 0's model, with forward and with central differences
    side by side (forward first, then central): seconds, the batch each picks, and how far the two
    information matrices differ. The proposal is the library's (evidence from the ledger, the
    information scorer, the registered strategy), with the scorer's matrices kept for the comparison."""
    store = round_zero(learner, config, work, f"sketch/{config.seed}")
    row: dict = {"seconds": {}, "batch": {}}
    info: dict[str, torch.Tensor] = {}
    for scheme in ("forward", "central"):
        cfg = config.with_overrides(**{"planner.strategy": "information", "planner.information_differences": scheme})
        score = steps.information_scorer(cfg, store, 1)

        def information(points: torch.Tensor, scheme: str = scheme, score=score) -> torch.Tensor:
            info[scheme] = score(points)
            return info[scheme]

        evidence = steps.evidence_for(cfg, store.read_ledger())
        evidence.feasible = lambda z, cfg=cfg: steps.feasible_mask(cfg, z)
        evidence.information = information
        strategy = strategy_for(cfg, 1, evidence)
        t0 = time.perf_counter()
        new = strategy.propose(cfg.design.space(), cfg.budget.batch_size, evidence)
        row["seconds"][scheme] = time.perf_counter() - t0
        row["batch"][scheme] = new.tolist()
    a, b = info["forward"], info["central"]
    row["info_max_relative_difference"] = float(((a - b).abs().amax(dim=(1, 2)) / b.abs().amax(dim=(1, 2))).max())
    row["same_batch"] = row["batch"]["forward"] == row["batch"]["central"]
    row["speedup_forward"] = row["seconds"]["central"] / row["seconds"]["forward"]
    return row
