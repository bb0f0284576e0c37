"""physics.integrator: the time loop lands exactly on every event, no step crosses one, and steps
are the stable one except the shortened step before an event."""
from __future__ import annotations

import math

import pytest

from closedloop.physics.integrator import integrate, is_event


def _trace(events: list[float], dt_max: float):
    steps: list[tuple[float, float]] = []
    arrivals: list[tuple[float, float]] = []

    def step(state: float, t: float, dt: float) -> float:
        steps.append((t, dt))
        return state + dt  # the state is the elapsed time

    final, n = integrate(step, 0.0, events, dt_max, lambda s, t: arrivals.append((s, t)))
    return steps, arrivals, final, n


def test_lands_on_every_event_and_never_crosses_one() -> None:
    events = [3.3, 10.0, 20.0, 21.1, 30.0]
    dt_max = 0.7
    steps, arrivals, final, n = _trace(events, dt_max)
    assert [t for _, t in arrivals] == events  # at_event sees each event time exactly
    for (s, t) in arrivals:
        assert s == pytest.approx(t, abs=1e-12)  # the state has advanced by exactly that time
    assert n == len(steps) and final == pytest.approx(30.0, abs=1e-12)
    for t, dt in steps:
        assert 0 < dt <= dt_max
        assert not any(t < e < t + dt - 1e-12 for e in events)  # no event strictly inside a step
    # the fewest steps: ceil(gap / dt_max) per interval between events
    gaps = [b - a for a, b in zip([0.0] + events, events)]
    assert n == sum(math.ceil(g / dt_max - 1e-12) for g in gaps)


def test_unbounded_step_takes_one_step_per_event_and_round_off_gaps_none() -> None:
    steps, arrivals, _, n = _trace([1.0, 2.5, 2.5 + 1e-12, 4.0], math.inf)
    assert n == 3 and [dt for _, dt in steps] == pytest.approx([1.0, 1.5, 1.5])
    assert len(arrivals) == 4  # an event within round-off of the last is still reported, without a step


def test_is_event_tolerance() -> None:
    assert is_event(10.0 + 1e-10, [0.0, 10.0]) and not is_event(10.001, [0.0, 10.0])
    assert is_event(0.0, [0.0]) and not is_event(5.0, [])
