"""The steering search: the objective is the mean log ratio of unsteered to steered distance to the
target references, zero for an experiment that changes nothing; references must fit the prediction."""
from __future__ import annotations

import pytest
import torch

from closedloop.lab import steering
from closedloop.planners.steering import SteeringExperiment


def test_an_experiment_of_zero_strength_agrees_exactly_as_well_as_no_steering(steered):
    problem = steered.problem
    assert problem.unsteered.shape == problem.reference.shape and len(problem.targets) == 1
    zero = SteeringExperiment(alpha=0.0, layer=0, first_step=0, window=problem.n_steps)
    strong = SteeringExperiment(alpha=1.0, layer=0, first_step=0, window=problem.n_steps)
    assert torch.equal(problem.predict(zero), problem.unsteered)
    values = steering.agreement(problem, [zero, strong])
    assert values[0] == 0.0 and values[1] != 0.0
    d0, d1 = problem.distance(problem.unsteered), problem.distance(problem.predict(strong))
    assert torch.allclose(values[1], (d0.log() - d1.log()).mean())


def test_the_search_scores_its_experiments_by_the_agreement(steered):
    search = steering.search_experiments(steered.problem, steered.config)
    assert len(search.experiments) == steered.config.initial_experiments and search.strategies == ["sobol"] * 2
    assert torch.allclose(search.values, steering.agreement(steered.problem, search.experiments))
    assert search.best == search.experiments[int(search.values.argmax())]


def test_references_of_another_shape_are_refused(steered):
    with pytest.raises(ValueError, match="target references have shape"):
        steering.steering_problem(steered.campaign, steered.layers, steered.directions, steered.targets,
                                  [r[:-1] for r in steered.references])
