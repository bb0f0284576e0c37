"""Fixtures for the steering steps: the tiny campaign (tests/lab/steering_campaign.py), a guard that
fails any simulation, and a steering problem on it whose references need no simulation."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from closedloop.lab import steering
from closedloop.lab.steering import targets
from closedloop.surrogates.coupling import batch_problems
from tests.lab.steering_campaign import make_campaign


@pytest.fixture(scope="module")
def camp(tmp_path_factory) -> Path:
    return make_campaign(tmp_path_factory.mktemp("steer"))


@pytest.fixture()
def no_simulation(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a bad request must fail before any simulation")
    monkeypatch.setattr(targets, "simulate", refuse)


@pytest.fixture(scope="module")
def steered(camp: Path) -> SimpleNamespace:
    """inlet_speed toward high, one base case; each target's reference is the surrogate's own rollout of
    the target scenario (what a perfect steering would reach), so nothing is simulated."""
    campaign = steering.open_campaign(camp)
    config = steering.SteeringConfig(concept="inlet_speed", base_cases=1, n_bootstrap=10, initial_experiments=2,
                                     rounds=0, dose_points=3, alpha_min=-1.0, alpha_max=1.0)
    layers = steering.check_config(campaign, config)
    groups = steering.select_groups(campaign, config)
    target_list = steering.target_scenarios(campaign, groups)
    directions = steering.measure_directions(campaign, groups, layers, n_bootstrap=10)
    forcing, problem = batch_problems([t.scenario for t in target_list])
    with torch.no_grad():
        references = list(campaign.model.rollout(forcing, problem.n_steps))
    return SimpleNamespace(campaign=campaign, config=config, layers=layers, groups=groups, targets=target_list,
                           directions=directions, references=references,
                           problem=steering.steering_problem(campaign, layers, directions, target_list, references))
