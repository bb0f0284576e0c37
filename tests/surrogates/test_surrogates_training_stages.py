"""A staged fit reported as one training, and AdamW's moments carried across trainings."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from closedloop.simulators import simulate
from closedloop.surrogates import HybridSurrogate, TrainConfig, train
from closedloop.surrogates.coupling import batch_problems, spec_for
from closedloop.surrogates.training import rollout_loss, train_stages


@pytest.fixture(scope="module")
def two_cases(room_scenario):
    base = room_scenario.with_parameters({"time.horizon": 40.0})
    scenarios = [base, base.with_parameters({"source.x": 7.0, "source.y": 2.0, "inlets.0.speed": 0.8})]
    forcing, problem = batch_problems(scenarios)
    target = torch.stack([simulate(s, device="cpu").plane for s in scenarios]).to(torch.float64)
    return forcing, problem, target


def fresh_model(problem, seed=0):
    torch.manual_seed(seed)
    return HybridSurrogate(spec_for(problem, hidden_channels=4, closure_form="multiplicative", closure_gain=0.05),
                           problem.mask).double()


def test_stages_run_in_sequence_and_report_as_one_training(two_cases):
    """A physics stage (closure frozen) then a closure stage: the same weights as two train calls in a
    row, losses over both stages, the start of the first and the best epoch counted over both."""
    forcing, problem, target = two_cases
    physics = TrainConfig(epochs=3, learning_rate=1e-3, physics_learning_rate=1e-2, physics_warmup_epochs=3, seed=1)
    closure = TrainConfig(epochs=4, learning_rate=1e-3, seed=1, batch_size=1)
    model = fresh_model(problem)
    seen = []
    report = train_stages(model, forcing, target, [physics, closure], progress=lambda e, loss: seen.append(e))
    twin = fresh_model(problem)
    a, b = train(twin, forcing, target, physics), train(twin, forcing, target, closure)
    for name, tensor in twin.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    assert report.stages == [3, 4] and report.losses == a.losses + b.losses and seen == list(range(7))
    assert report.initial_loss == a.initial_loss and report.best_loss == b.best_loss
    assert report.best_epoch == (3 + b.best_epoch if b.best_epoch >= 0 else a.best_epoch)
    assert rollout_loss(model, forcing, target) == pytest.approx(report.best_loss, rel=1e-12)
    assert report.seconds > 0
    # the physics stage moved only the physics fields: the closure's head is still zero after it
    frozen = fresh_model(problem)
    train(frozen, forcing, target, physics)
    assert frozen.closure.head.weight.abs().max() == 0
    with pytest.raises(ValueError, match="stages"):
        train_stages(model, forcing, target, [])


def test_kept_optimizer_state_continues_adams_moments(two_cases):
    """A warm start given the last training's AdamW state continues its step count and moments (a
    fresh one starts at step 0); a state of another model's groups is refused, naming the field."""
    forcing, problem, target = two_cases
    cfg = TrainConfig(epochs=2, learning_rate=1e-3, seed=0)
    model = fresh_model(problem)
    first = train(model, forcing, target, cfg)
    steps = [float(s["step"]) for s in first.optimizer_state["state"].values()]
    assert steps and min(steps) > 0
    start = {k: v.clone() for k, v in model.state_dict().items()}
    kept = train(model, forcing, target, dataclasses.replace(cfg, epochs=1, learning_rate=5e-4),
                 optimizer_state=first.optimizer_state)
    more = [float(s["step"]) for s in kept.optimizer_state["state"].values()]
    assert all(m > s for m, s in zip(more, steps))
    # the schedule's base rate is this training's, not the state's
    assert kept.optimizer_state["param_groups"][0]["initial_lr"] == pytest.approx(5e-4)
    model.load_state_dict(start)
    fresh = train(model, forcing, target, dataclasses.replace(cfg, epochs=1))
    assert max(float(s["step"]) for s in fresh.optimizer_state["state"].values()) < min(more)
    other = HybridSurrogate(spec_for(problem, hidden_channels=2, variant="physics_only"), problem.mask).double()
    with pytest.raises(ValueError, match="optimizer_state"):
        train(other, forcing, target, cfg, optimizer_state=first.optimizer_state)
