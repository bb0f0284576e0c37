"""The scenario's emission as a forcing of the transport: S(x, t) = q · w(x; x_s(t)) on [start, stop).

q is the emission rate (mg/s), w the source density for a unit rate (``geometry.source_weights``,
1/m³, Σ w V = 1 over the fluid cells) at the static position or at x_s(t) along the trajectory. The
switch is decided per step at its midpoint, so a step never emits for part of its length: with the
switches among the integrator's events the emitted mass is q × (time on) to round-off.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from closedloop.simulators.geometry import RoomGeometry, source_weights
from closedloop.simulators.scenario import Scenario


class SourceTerm:
    """S(t) for one scenario on its grid, as (nx, ny, nz) fields of ``dtype`` on ``device``."""

    def __init__(self, scenario: Scenario, geometry: RoomGeometry, dtype: torch.dtype,
                 device: torch.device) -> None:
        src = scenario.source
        self.rate = src.rate
        self.start = src.start
        self.stop = src.stop if src.stop is not None else math.inf
        self.is_moving = src.is_moving
        self._scenario, self._geometry, self._dtype, self._device = scenario, geometry, dtype, device
        # a static source's field is computed once
        self._static = None if src.is_moving else src.rate * self._weights(src.position)

    def _weights(self, position: tuple[float, float, float]) -> torch.Tensor:
        return source_weights(self._scenario, self._geometry, position, self._dtype, self._device)

    def is_on(self, t: float, dt: float) -> bool:
        """Whether the step [t, t + Δt] emits: start ≤ t + Δt/2 < stop."""
        return self.start <= t + 0.5 * dt < self.stop

    def switch_times(self, horizon: float) -> set[float]:
        """The switch-on and switch-off times inside (0, horizon): events for the integrator."""
        return {t for t in (self.start, self.stop) if 0 < t < horizon}

    def density(self, t: float) -> torch.Tensor:
        """S(·, t) = q w(·; x_s(t)), shape (nx, ny, nz), mg/(m³ s)."""
        if self._static is not None:
            return self._static
        return self.rate * self._weights(self._scenario.source.position_at(t))

    def stage_forcings(self, t: float, dt: float, stage_times: Sequence[float],
                       off: torch.Tensor | None = None) -> tuple[torch.Tensor | None, ...]:
        """S at each stage time t + cᵢΔt of a step (``physics.steppers.Stepper.stage_times``), or ``off``
        (None, or a zero field for a compiled step) on every stage when the step does not emit."""
        if not self.is_on(t, dt):
            return tuple(off for _ in stage_times)
        return tuple(self.density(t + ci * dt) for ci in stage_times)

    def emitted(self, t: float, dt: float) -> float:
        """Mass emitted over the step [t, t + Δt]: q Δt when on, else 0."""
        return self.rate * dt if self.is_on(t, dt) else 0.0
