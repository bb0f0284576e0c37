"""A scenario's scalar source (the pydantic model): static or moving along waypoints, on over [start, stop).

How the solver emits it step by step is simulators/sources.py.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from closedloop.schema import Strict

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Waypoint(Strict):
    """A point of a moving source's path: position (x, y, z) at time t (s)."""

    t: NonNegativeFloat
    x: Finite
    y: Finite
    z: Finite


class Source(Strict):
    """A volumetric source emitting ``rate`` (mass/s) between ``start`` and ``stop`` (s).

    Static at (x, y, z), or moving along ``trajectory`` (waypoints, linear in time, held at the
    ends). ``shape = "box"`` spreads the emission uniformly over a box of edge ``size`` (default:
    one cell) weighted by its overlap with each fluid cell; ``"gaussian"`` uses the cell integrals
    of a Gaussian of standard deviation ``sigma`` truncated at 3σ. Either way the weights are
    renormalised over fluid cells, so the emitted mass is exactly rate × time on.
    """

    x: Finite | None = None
    y: Finite | None = None
    z: Finite | None = None
    trajectory: list[Waypoint] | None = None
    rate: PositiveFloat
    shape: Literal["box", "gaussian"] = "box"
    size: PositiveFloat | None = None
    sigma: PositiveFloat | None = None
    start: NonNegativeFloat = 0.0
    stop: PositiveFloat | None = None

    @model_validator(mode="after")
    def _window(self) -> Source:
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must be after start ({self.start})")
        static = [v is not None for v in (self.x, self.y, self.z)]
        if self.trajectory is None:
            if not all(static):
                raise ValueError("give x, y and z (a static source) or a trajectory (a moving one)")
        else:
            if any(static):
                raise ValueError("give either x, y, z or a trajectory, not both")
            if len(self.trajectory) < 2:
                raise ValueError("trajectory: needs at least 2 waypoints")
            times = [w.t for w in self.trajectory]
            if any(b <= a for a, b in zip(times, times[1:])):
                raise ValueError(f"trajectory: waypoint times must increase strictly, got {times}")
        if self.shape == "gaussian" and self.sigma is None:
            raise ValueError("sigma: required when shape = 'gaussian'")
        return self

    @property
    def is_moving(self) -> bool:
        return self.trajectory is not None

    @property
    def position(self) -> tuple[float, float, float]:
        """The static position, or the trajectory's first waypoint."""
        if self.trajectory is not None:
            w = self.trajectory[0]
            return (w.x, w.y, w.z)
        return (self.x, self.y, self.z)  # type: ignore[return-value]

    def position_at(self, t: float) -> tuple[float, float, float]:
        """Linear interpolation along the trajectory, held constant before and after it."""
        if self.trajectory is None:
            return self.position
        pts = self.trajectory
        if t <= pts[0].t:
            return (pts[0].x, pts[0].y, pts[0].z)
        for a, b in zip(pts, pts[1:]):
            if t <= b.t:
                s = (t - a.t) / (b.t - a.t)
                return (a.x + s * (b.x - a.x), a.y + s * (b.y - a.y), a.z + s * (b.z - a.z))
        return (pts[-1].x, pts[-1].y, pts[-1].z)

    def path_samples(self, step: float) -> list[tuple[float, float, float, float]]:
        """(t, x, y, z) along the path every ``step`` metres or finer (for validation)."""
        if self.trajectory is None:
            return [(0.0, *self.position)]
        out = []
        for a, b in zip(self.trajectory, self.trajectory[1:]):
            dist = ((b.x - a.x) ** 2 + (b.y - a.y) ** 2 + (b.z - a.z) ** 2) ** 0.5
            k = max(1, int(dist / step) + 1)
            for j in range(k + 1):
                t = a.t + (b.t - a.t) * j / k
                out.append((t, *self.position_at(t)))
        return out


__all__ = ["Finite", "NonNegativeFloat", "PositiveFloat", "Source", "Waypoint"]
