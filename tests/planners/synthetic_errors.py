"""A synthetic error landscape on the unit square for the planner tests: large near PEAK, small elsewhere,
and planner settings that keep each proposal under a second."""
from __future__ import annotations

import torch

from closedloop.planners.design import DesignSpace
from closedloop.planners.strategies import PlannerSettings

SPACE = DesignSpace(names=("a", "b"), lower=(0.0, 0.0), upper=(1.0, 1.0))
PEAK = torch.tensor([0.8, 0.8], dtype=torch.float64)
FAST = PlannerSettings(num_restarts=2, raw_samples=64, mc_samples=32, maxiter=30, pool_size=256, gp_maxiter=40,
                       optimizer="pool",
                       integration_points=64, candidates=128)


def log_error(x: torch.Tensor) -> torch.Tensor:
    """A synthetic error landscape: large near PEAK, small elsewhere."""
    return -6.0 * ((x - PEAK) ** 2).sum(dim=1)


def near(x: torch.Tensor, centre: torch.Tensor, r: float) -> torch.Tensor:
    return (x - centre).norm(dim=-1) < r
