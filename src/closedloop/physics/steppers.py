"""Explicit time steppers, kept apart from the right-hand sides they integrate.

A stepper advances one step Δt of dc/dt = f(c, s), where s is a per-stage forcing (a source field at
the stage's time, or None), and integrates with the same stages an auxiliary quantity q with
dq/dt = g(c, s) — e.g. the mass leaving through open boundaries — as Δq = Δt Σᵢ bᵢ g(Yᵢ, sᵢ), so a
budget ∫c dV + q built on a flux-form f closes to round-off.

``rate(c, s) -> (dc/dt, dq/dt)``: c of any shape (``(*batch, *grid.shape)``), dc/dt of c's shape,
dq/dt of any shape (``(*batch,)`` for a boundary flux) or a Python float. ``forcings`` holds one s per
stage, the stage at time t + cᵢΔt with cᵢ from ``Stepper.stage_times``. Δt may be a float or a 0-d
tensor (a compiled step is not rebuilt per value, ``physics.kernels``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

Rate = Callable[[torch.Tensor], torch.Tensor]
StageRate = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
Step = Callable[[StageRate, torch.Tensor, Any, Sequence[Any]], tuple[torch.Tensor, Any]]


def euler_step(rate: StageRate, c: torch.Tensor, dt: Any, forcings: Sequence[Any] = (None,)
               ) -> tuple[torch.Tensor, Any]:
    """Forward Euler: cⁿ⁺¹ = cⁿ + Δt f(cⁿ, s₀);  Δq = Δt g(cⁿ, s₀).  Returns (cⁿ⁺¹, Δq)."""
    r0, g0 = rate(c, forcings[0])
    return c + dt * r0, dt * g0


def ssp_rk2_step(rate: StageRate, c: torch.Tensor, dt: Any, forcings: Sequence[Any] = (None, None)
                 ) -> tuple[torch.Tensor, Any]:
    """SSP-RK2 (Heun) in Shu–Osher form, s₀ at tⁿ and s₁ at tⁿ + Δt.  Returns (cⁿ⁺¹, Δq):

    c* = cⁿ + Δt f(cⁿ, s₀);   cⁿ⁺¹ = ½ cⁿ + ½ (c* + Δt f(c*, s₁));   Δq = ½ Δt (g(cⁿ, s₀) + g(c*, s₁)).

    A convex combination of Euler steps, so it keeps Euler's positivity under the same Δt; Δq uses
    the scheme's weights b = (½, ½), so q moves exactly as ∫c dV does.
    """
    r0, g0 = rate(c, forcings[0])
    stage = c + dt * r0
    r1, g1 = rate(stage, forcings[1])
    return 0.5 * c + 0.5 * (stage + dt * r1), 0.5 * dt * (g0 + g1)


class Stepper(NamedTuple):
    """An explicit scheme: its one-step function and the times cᵢ (in units of Δt) of its stages."""

    step: Step
    stage_times: tuple[float, ...]


STEPPERS = {"euler": Stepper(euler_step, (0.0,)), "ssp_rk2": Stepper(ssp_rk2_step, (0.0, 1.0))}


def _autonomous(rate: Rate) -> StageRate:
    """f(c) as a stage rate without forcing or auxiliary quantity."""
    return lambda c, _forcing: (rate(c), 0.0)


def forward_euler(rate: Rate, c: torch.Tensor, dt: float) -> torch.Tensor:
    """cⁿ⁺¹ = cⁿ + Δt f(cⁿ) (``euler_step`` for an autonomous f)."""
    return euler_step(_autonomous(rate), c, dt)[0]


def heun(rate: Rate, c: torch.Tensor, dt: float) -> torch.Tensor:
    """SSP-RK2 (Heun): c* = c + Δt f(c); cⁿ⁺¹ = ½ c + ½ (c* + Δt f(c*)) (``ssp_rk2_step``, autonomous f)."""
    return ssp_rk2_step(_autonomous(rate), c, dt)[0]
