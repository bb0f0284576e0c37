"""The steering search: BoTorch chooses (layer, α, step window) to bring the base cases'
predictions closer to their target references; the objective is the mean over base cases of
log(d_unsteered / d_steered), d = relative L2 to the target's reference series."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from closedloop.lab.steering.config import SteeringConfig
from closedloop.lab.steering.opened import SteeringCampaign
from closedloop.lab.steering.targets import Target
from closedloop.planners.steering import SteeringExperiment, SteeringSearch, SteeringSpace, optimise_steering
from closedloop.simulators import Scenario
from closedloop.surrogates import HybridSurrogate
from closedloop.surrogates.coupling import batch_problems
from closedloop.surrogates.steering import ConceptDirection, effect_measures, steer


@dataclass
class SteeringProblem:
    """Base cases batched for the surrogate, with the target references and unsteered predictions."""

    model: HybridSurrogate
    layers: list[str]
    directions: list[ConceptDirection]  # one per layer, same order
    targets: list[Target]
    forcing: Any
    n_steps: int
    spacing: tuple[float, float]
    mask: torch.Tensor
    reference: torch.Tensor  # (B, T, nx, ny) target references
    unsteered: torch.Tensor  # (B, T, nx, ny)

    @property
    def space(self) -> SteeringSpace:
        return SteeringSpace(n_layers=len(self.layers), n_steps=self.n_steps)

    def predict(self, experiment: SteeringExperiment | None = None,
                direction: ConceptDirection | None = None) -> torch.Tensor:
        """The base cases' predictions, steered by ``experiment`` (``direction`` overrides its layer's Δ)."""
        if experiment is None:
            return self.unsteered
        d = direction if direction is not None else self.directions[experiment.layer]
        with torch.no_grad(), steer(self.model, d, experiment.alpha, experiment.steps(self.n_steps)):
            return self.model.rollout(self.forcing, self.n_steps)

    def distance(self, pred: torch.Tensor) -> torch.Tensor:
        """Relative L2 of each base case's series to its target reference, (B,)."""
        return (pred - self.reference).flatten(1).norm(dim=1) / self.reference.flatten(1).norm(dim=1).clamp_min(1e-300)

    def measures(self, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        return effect_measures(pred, self.spacing, self.mask, target=self.reference)


def steering_problem(campaign: SteeringCampaign, layers: list[str], directions: list[ConceptDirection],
                     targets: list[Target], references: list[torch.Tensor],
                     base_scenarios: list[Scenario] | None = None) -> SteeringProblem:
    """``base_scenarios`` default to the campaign's scenario at each target's base parameters
    (give them for base cases outside the design, e.g. another scenario family)."""
    base = base_scenarios if base_scenarios is not None else [campaign.scenario_for(t.base_parameters)
                                                              for t in targets]
    forcing, problem = batch_problems(base)
    ref = torch.stack([r.to(torch.float64) for r in references])
    with torch.no_grad():
        unsteered = campaign.model.rollout(forcing, problem.n_steps)
    if ref.shape != unsteered.shape:
        raise ValueError(f"target references have shape {tuple(ref.shape)}, the surrogate predicts "
                         f"{tuple(unsteered.shape)}")
    return SteeringProblem(model=campaign.model, layers=layers, directions=directions, targets=targets,
                           forcing=forcing, n_steps=problem.n_steps, spacing=problem.spacing,
                           mask=problem.mask, reference=ref, unsteered=unsteered)


def agreement(problem: SteeringProblem, experiments: list[SteeringExperiment]) -> torch.Tensor:
    """Objective per experiment: mean over base cases of log(d_unsteered / d_steered) (> 0: closer)."""
    d0 = problem.distance(problem.unsteered)
    out = [(d0.log() - problem.distance(problem.predict(e)).clamp_min(1e-300).log()).mean() for e in experiments]
    return torch.stack(out).to(torch.float64)


def search_experiments(problem: SteeringProblem, config: SteeringConfig,
                       progress: Callable[[int], None] | None = None) -> SteeringSearch:
    """BoTorch's search over (α, layer, first step, window) for the best agreement."""
    space = SteeringSpace(n_layers=len(problem.layers), n_steps=problem.n_steps,
                          alpha_min=config.alpha_min, alpha_max=config.alpha_max)

    def objective(batch: list[SteeringExperiment]) -> torch.Tensor:
        y = agreement(problem, batch)
        if progress is not None:
            progress(len(batch))
        return torch.nan_to_num(y, nan=-10.0, posinf=-10.0, neginf=-10.0)

    return optimise_steering(objective, space, n_initial=config.initial_experiments, rounds=config.rounds,
                             q=config.batch_size, seed=config.seed)
