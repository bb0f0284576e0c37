"""Explicit time steppers, kept apart from the right-hand sides they integrate."""
from __future__ import annotations

from collections.abc import Callable

import torch

Rate = Callable[[torch.Tensor], torch.Tensor]


def forward_euler(rate: Rate, c: torch.Tensor, dt: float) -> torch.Tensor:
    """c^{n+1} = c^n + Δt f(c^n)."""
    return c + dt * rate(c)


def heun(rate: Rate, c: torch.Tensor, dt: float) -> torch.Tensor:
    """SSP-RK2 (Heun): c* = c + Δt f(c); c^{n+1} = ½ c + ½ (c* + Δt f(c*)).

    A convex combination of Euler steps, so it keeps Euler's positivity under the same Δt.
    """
    stage = c + dt * rate(c)
    return 0.5 * c + 0.5 * (stage + dt * rate(stage))
