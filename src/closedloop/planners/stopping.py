"""When a campaign stops: budget spent, error small everywhere, or no more progress.

- budget: ``cases_used`` (done + failed simulations) ≥ ``max_cases``, or the round budget is spent;
- accuracy: the GP models g(x) = log error, so the expected maximum error over the space is
  E[max_x exp g(x)], estimated by joint posterior samples of g on a Sobol set of feasible points;
  stop when it is below the target (the surrogate is predicted good enough *everywhere*, which
  a round mean cannot promise);
- stagnation: the best round-mean validation error has not improved by a relative
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


def stop_reason(*, cases_used: int, max_cases: int | None, rounds_done: int, max_rounds: int,
                expected_max: float | None = None, max_error_target: float | None = None,
                history: Sequence[float] = (), patience: int | None = None,
                min_improvement: float = 0.0) -> str | None:
    """The first reason that holds (budget, accuracy, stagnation), or None to go on."""
    if max_cases is not None and cases_used >= max_cases:
        return f"simulation budget spent ({cases_used} of {max_cases} cases)"
    if expected_max is not None and max_error_target is not None and expected_max < max_error_target:
        return (f"accuracy target reached: GP-expected maximum error over the space {expected_max:.4f} "
                f"< {max_error_target}")
    if patience is not None and len(history) > patience:
        stale = rounds_without_improvement(history, min_improvement)
        if stale >= patience:
            return (f"no improvement for {stale} rounds (best round-mean validation error "
                    f"{min(history):.4f}; patience {patience})")
    if rounds_done >= max_rounds:
        return f"round budget spent ({max_rounds} rounds)"
    return None
