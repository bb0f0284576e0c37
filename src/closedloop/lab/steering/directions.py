"""Concept directions: Δ = mean activation(A) − mean activation(B) per candidate layer.

Saved with the checkpoint id to ``steering/directions/<concept>.pt``, so a direction is never
applied to a model it was not measured on.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from closedloop.lab.atomic import atomic_path
from closedloop.lab.lock import campaign_lock
from closedloop.lab.steering.groups import Groups, group_scenarios
from closedloop.lab.steering.opened import SteeringCampaign
from closedloop.simulators import Scenario
from closedloop.surrogates.coupling import batch_problems
from closedloop.surrogates.steering import (ConceptDirection, Reduce, case_activations, concept_direction,
                                            directions_payload, record_activations)


def layer_activations(model: nn.Module, scenarios: list[Scenario], layers: list[str],
                      reduce: Reduce = "space_mean") -> dict[str, torch.Tensor]:
    """Per-case activations, mean over the rollout: {layer: (n, C)} or, for ``field``, (n, C, nx, ny)."""
    forcing, problem = batch_problems(scenarios)
    with torch.no_grad(), record_activations(model, layers, reduce) as acts:
        model.rollout(forcing, problem.n_steps)
    return {name: case_activations(acts[name]) for name in layers}


def measure_directions(campaign: SteeringCampaign, groups: Groups, layers: list[str], n_bootstrap: int = 100,
                       seed: int = 0, reduce: Reduce = "space_mean") -> list[ConceptDirection]:
    """Δ per layer from groups A and B (base cases excluded), tagged with the checkpoint id."""
    acts_a = layer_activations(campaign.model, group_scenarios(campaign, groups.a), layers, reduce)
    acts_b = layer_activations(campaign.model, group_scenarios(campaign, groups.b), layers, reduce)
    out = []
    for name in layers:
        d = concept_direction(acts_a[name], acts_b[name], name, reduce=reduce, n_bootstrap=n_bootstrap, seed=seed,
                              query_a=groups.query_a, query_b=groups.query_b, model=campaign.model_name)
        d.checkpoint_id, d.concept = campaign.checkpoint_id, groups.concept
        out.append(d)
    return out


def hold_steering(campaign: SteeringCampaign, owner: str | None = None) -> contextlib.AbstractContextManager:
    """An exclusive lock on ``steering/`` (one steering run at a time writes its tables); a second
    run raises :class:`closedloop.lab.lock.CampaignLocked` naming the holder."""
    return campaign_lock(campaign.steering_dir, owner=owner)


def save_directions(campaign: SteeringCampaign, directions: list[ConceptDirection], concept: str) -> Path:
    path = campaign.steering_dir / "directions" / f"{concept}.pt"
    with atomic_path(path, label="directions") as tmp:
        torch.save(directions_payload(directions, campaign.checkpoint_id), tmp)
    return path
