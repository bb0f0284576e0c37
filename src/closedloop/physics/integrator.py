"""Time marching that lands exactly on event times (outputs, switches of a forcing).

Steps of Δt = min(Δt_max, t_e − t): the step before an event t_e is shortened so that no step
crosses it — a source switched on at t_e or an output at t_e is then resolved exactly instead of to
within a step. ``step`` is any one-step map (``physics.steppers`` with its right-hand side).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

State = TypeVar("State")

EVENT_TOLERANCE = 1e-9  # relative to max(1, t_e): a gap below it is round-off of Σ Δt, not a step


def integrate(step: Callable[[State, float, float], State], state: State, events: Iterable[float],
              dt_max: float, at_event: Callable[[State, float], None] | None = None,
              t0: float = 0.0) -> tuple[State, int]:
    """March ``state`` from ``t0`` through each time of ``events`` (increasing, after ``t0``).

    ``step(state, t, dt)`` returns the state at t + dt; ``at_event(state, t_e)`` is called on
    arriving at each event, with t snapped to t_e. Returns (final state, number of steps).
    """
    t, steps = t0, 0
    for target in events:
        while target - t > EVENT_TOLERANCE * max(1.0, target):
            dt = min(dt_max, target - t)
            state = step(state, t, dt)
            t += dt
            steps += 1
        t = target
        if at_event is not None:
            at_event(state, t)
    return state, steps


def is_event(t: float, times: Iterable[float]) -> bool:
    """Whether ``t`` is one of ``times`` to within the integrator's tolerance."""
    return any(abs(t - s) < EVENT_TOLERANCE * max(1.0, s) for s in times)
