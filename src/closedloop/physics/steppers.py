"""Explicit time steppers, kept apart from the right-hand sides they integrate.

A stepper advances one step Δt of dc/dt = f(c, s), where s is a per-stage forcing (a source field at
the stage's time, or None), and integrates with the same stages an auxiliary quantity q with
dq/dt = g(c, s) — e.g. the mass leaving through open boundaries — as Δq = Δt Σᵢ bᵢ g(Yᵢ, sᵢ), so a
budget ∫c dV + q built on a flux-form f closes to round-off.

``rate(c, s) -> (dc/dt, dq/dt)``: c of any shape (``(*batch, *grid.shape)``), dc/dt of c's shape,
dq/dt of any shape (``(*batch,)`` for a boundary flux) or a Python float. ``forcings`` holds one s per
stage, the stage at time t + cᵢΔt with cᵢ from ``Stepper.stage_times``. Δt may be a float or a 0-d
tensor (a compiled step is not rebuilt per value, ``physics.kernels``).

``Stepper.ssp_coefficient`` C: the scheme is a convex combination of forward-Euler steps of size
Δt/C, so it keeps forward Euler's positivity and TVD property for Δt ≤ C Δt_FE (Gottlieb, Ketcheson &
Shu 2011). Forward Euler and Heun have C = 1; the s-stage second-order SSPRK(s,2) has C = s − 1, so
per right-hand-side evaluation it advances (s − 1)/s Δt_FE against Heun's ½.
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


def ssp_rk2_stages(stages: int) -> Step:
    """SSPRK(s,2), s ≥ 2 stages, second order, in its low-storage Shu–Osher form (Ketcheson 2008):

    u₀ = cⁿ;  uᵢ = uᵢ₋₁ + h f(uᵢ₋₁, sᵢ₋₁) for i = 1 … s−1, with h = Δt/(s − 1);
    cⁿ⁺¹ = cⁿ/s + (s − 1)/s (uₛ₋₁ + h f(uₛ₋₁, sₛ₋₁));   Δq = Δt/s Σᵢ g(uᵢ, sᵢ).

    Stage i sits at t + i Δt/(s − 1) (``ssp_rk2_stage_times``); cⁿ⁺¹ = cⁿ + Δt/s Σᵢ f(uᵢ), so the
    weights are bᵢ = 1/s and q moves as ∫c dV does. Each uᵢ is a forward-Euler step of size Δt/(s − 1):
    SSP coefficient s − 1. s = 2 is Heun (``ssp_rk2_step``).
    """
    if stages < 2:
        raise ValueError(f"stages: SSPRK(s,2) needs s >= 2, got {stages}")
    h_frac, keep = 1.0 / (stages - 1), (stages - 1) / stages

    def step(rate: StageRate, c: torch.Tensor, dt: Any, forcings: Sequence[Any]) -> tuple[torch.Tensor, Any]:
        h = dt * h_frac
        u, q = c, 0.0
        for i in range(stages - 1):
            r, g = rate(u, forcings[i])
            u, q = u + h * r, q + g
        r, g = rate(u, forcings[stages - 1])
        return c / stages + keep * (u + h * r), (dt / stages) * (q + g)

    return step


def ssp_rk2_stage_times(stages: int) -> tuple[float, ...]:
    """cᵢ = i/(s − 1), i = 0 … s−1: the stage times of SSPRK(s,2) in units of Δt."""
    return tuple(i / (stages - 1) for i in range(stages))


class Stepper(NamedTuple):
    """An explicit scheme: its one-step function, the times cᵢ (in units of Δt) of its stages, and its
    SSP coefficient C (it keeps forward Euler's positivity for Δt ≤ C Δt_FE)."""

    step: Step
    stage_times: tuple[float, ...]
    ssp_coefficient: float = 1.0

    @property
    def stages(self) -> int:
        return len(self.stage_times)


STEPPERS = {"euler": Stepper(euler_step, (0.0,)), "ssp_rk2": Stepper(ssp_rk2_step, (0.0, 1.0))}
SSP_RK2_STAGES = 4
"""The reference's default s for SSPRK(s,2) (``bench/time_stepping.py``: wall time and error against s)."""


def make_stepper(name: str, stages: int | None = None) -> Stepper:
    """The scheme ``name`` (``"euler"`` or ``"ssp_rk2"``) with ``stages`` evaluations a step: Euler has 1;
    ``ssp_rk2`` with 2 (or None) is Heun, with s > 2 SSPRK(s,2) (``ssp_rk2_stages``, C = s − 1)."""
    if name not in STEPPERS:
        raise ValueError(f"time_stepping: unknown scheme {name!r}; one of {sorted(STEPPERS)}")
    if name == "euler" or stages in (None, 2):
        if name == "euler" and stages not in (None, 1):
            raise ValueError(f"stages: forward Euler has 1 stage, got {stages}")
        return STEPPERS[name]
    return Stepper(ssp_rk2_stages(stages), ssp_rk2_stage_times(stages), float(stages - 1))


def _autonomous(rate: Rate) -> StageRate:
    """f(c) as a stage rate without forcing or auxiliary quantity."""
    return lambda c, _forcing: (rate(c), 0.0)


def forward_euler(rate: Rate, c: torch.Tensor, dt: float) -> torch.Tensor:
    """cⁿ⁺¹ = cⁿ + Δt f(cⁿ) (``euler_step`` for an autonomous f)."""
    return euler_step(_autonomous(rate), c, dt)[0]


def heun(rate: Rate, c: torch.Tensor, dt: float) -> torch.Tensor:
    """SSP-RK2 (Heun): c* = c + Δt f(c); cⁿ⁺¹ = ½ c + ½ (c* + Δt f(c*)) (``ssp_rk2_step``, autonomous f)."""
    return ssp_rk2_step(_autonomous(rate), c, dt)[0]
