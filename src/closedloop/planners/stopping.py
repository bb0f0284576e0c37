"""The math of two stop rules (lab/campaign/stop.py owns the rules and their order).

- accuracy: the GP models g(x) = log error, so the expected maximum error over the space is
  E[max_x exp g(x)], estimated by joint posterior samples of g on a Sobol set of feasible points;
  stop when it is below the target (the surrogate is predicted good enough *everywhere*, which
  a round mean cannot promise);
- stagnation (patience): the best round-mean validation error has not improved by a relative
  ``min_improvement`` for ``patience`` rounds.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from botorch.models.model import Model
from botorch.sampling import SobolQMCNormalSampler

from closedloop.planners.design import DesignSpace, sobol_design


def expected_max_error(model: Model, space: DesignSpace, *, seed: int, n_points: int = 512,
                       n_samples: int = 128,
                       feasible: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    """E[max_x exp g(x)] over ``n_points`` Sobol points (feasible ones) by ``n_samples`` QMC draws."""
    points = sobol_design(space, n_points, seed=seed)
    if feasible is not None:
        points = points[feasible(points)]
        if len(points) == 0:
            raise ValueError("expected_max_error: no feasible point among the Sobol samples")
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([n_samples]), seed=seed)
    with torch.no_grad():
        draws = sampler(model.posterior(points))  # n_samples x n x 1
    return float(draws.squeeze(-1).exp().amax(dim=-1).mean())


def rounds_without_improvement(history: Sequence[float], min_improvement: float = 0.0) -> int:
    """Rounds since the last one that beat the best before it by a relative ``min_improvement``."""
    best, since = float("inf"), 0
    for value in history:
        if value < best * (1 - min_improvement):
            best, since = value, 0
        else:
            since += 1
    return since
