"""Steering-experiment design: snapped proposals stay in the box; the GP loop finds a known optimum."""
from __future__ import annotations

import pytest
import torch

from closedloop.planners.steering import (SteeringExperiment, SteeringSpace, initial_experiments,
                                          optimise_steering, propose_experiments)


def test_proposals_are_snapped_inside_the_box_and_never_repeat():
    space = SteeringSpace(n_layers=3, n_steps=6, alpha_min=-1.5, alpha_max=2.5)
    done = initial_experiments(space, 5, seed=3)
    y = torch.tensor([-(e.alpha - 0.4) ** 2 - 0.1 * e.layer for e in done], dtype=torch.float64)
    new = propose_experiments(space, done, y, q=3, seed=1)
    assert len(new) == 3
    for e in done + new:
        assert -1.5 <= e.alpha <= 2.5
        assert e.layer in range(3) and e.first_step in range(6) and 1 <= e.window <= 6
        assert all(0 <= s < 6 for s in e.steps(6)) and len(e.steps(6)) >= 1
    keys = [(e.alpha, e.layer, e.first_step, e.window) for e in done + new]
    assert len(set(keys)) == len(keys)
    box = space.design_space()
    assert bool(box.contains(space.as_tensor(done + new)).all())


def test_gp_loop_finds_the_best_alpha_in_few_evaluations():
    """Agreement peaks at α = 0.7 on layer 1, steering from step 0 for the whole rollout."""
    space = SteeringSpace(n_layers=2, n_steps=4, alpha_min=-2.0, alpha_max=2.0)
    calls = []

    def objective(batch: list[SteeringExperiment]) -> torch.Tensor:
        calls.extend(batch)
        return torch.tensor([-(e.alpha - 0.7) ** 2 - 0.5 * (e.layer != 1) - 0.1 * e.first_step
                             + 0.05 * e.window for e in batch], dtype=torch.float64)

    search = optimise_steering(objective, space, n_initial=6, rounds=4, q=2, seed=0)
    assert len(calls) == len(search.experiments) <= 14
    best = search.best
    assert best.alpha == pytest.approx(0.7, abs=0.2)
    assert best.layer == 1 and best.first_step == 0
    assert search.strategies[:6] == ["sobol"] * 6 and set(search.strategies[6:]) == {"gp"}
    # the GP rounds did better than the Sobol start
    assert search.values[6:].max() > search.values[:6].max()


def test_bad_spaces_and_objectives_are_refused_by_name():
    with pytest.raises(ValueError, match="n_layers"):
        SteeringSpace(n_layers=0, n_steps=3)
    with pytest.raises(ValueError, match="alpha_min/alpha_max"):
        SteeringSpace(n_layers=1, n_steps=3, alpha_min=1.0, alpha_max=-1.0)
    space = SteeringSpace(n_layers=1, n_steps=3)
    with pytest.raises(ValueError, match="non-finite"):
        optimise_steering(lambda b: torch.full((len(b),), float("nan")), space, n_initial=3, rounds=0)
