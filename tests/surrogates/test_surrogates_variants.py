"""Variants (hybrid, Markovian, data-only, physics-only), the encoder–ConvLSTM closure, the memory gate,
curriculum and early stopping."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from closedloop.surrogates.coupling import batch_problems, spec_for
from closedloop.simulators import load_scenario, simulate
from closedloop.surrogates import HybridSurrogate, SurrogateSpec, TrainConfig, train
from closedloop.surrogates.training import curriculum_stage
from tests.conftest import ROOM


@pytest.fixture(scope="module")
def data():
    base = load_scenario(ROOM)
    sc = [base.with_parameters({"time.horizon": 40.0, "source.x": x}) for x in (2.5, 7.0, 3.5)]
    forcing, problem = batch_problems(sc)
    target = torch.stack([simulate(s, device="cpu").plane for s in sc]).double()
    return forcing, problem, target


def build(problem, seed=0, **kw) -> HybridSurrogate:
    torch.manual_seed(seed)
    spec = dataclasses.replace(spec_for(problem, hidden_channels=4), **kw)
    return HybridSurrogate(spec, problem.mask).double()


def noisy(model: HybridSurrogate, seed: int) -> HybridSurrogate:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.closure.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


@pytest.mark.parametrize("closure", ["convgru", "encoder_lstm"])
def test_shapes_masks_and_zero_start(data, closure):
    forcing, problem, _ = data
    hybrid = build(problem, closure=closure)
    physics = build(problem, variant="physics_only")
    with torch.no_grad():
        a, b = hybrid.rollout(forcing, 4), physics.rollout(forcing, 4)
    assert a.shape == (3, 5, *problem.mask.shape)
    assert torch.equal(a, b)  # untrained closure adds nothing
    noisy(hybrid, 1)
    with torch.no_grad():
        c = hybrid.rollout(forcing, 4)
    assert not torch.equal(c, b)
    assert (c[:, :, ~problem.mask] == 0).all()  # the closure cannot put mass in solids


@pytest.mark.parametrize("closure", ["convgru", "encoder_lstm"])
def test_memory_matters_for_hybrid_not_for_markovian(data, closure):
    """Zeroing the carried state changes a hybrid's next output; a Markovian closure ignores it."""
    forcing, problem, _ = data
    for variant, should_differ in (("hybrid", True), ("markovian", False)):
        model = noisy(build(problem, closure=closure, variant=variant), 3)
        with torch.no_grad():
            c, h = model.initial_state(forcing, torch.float64, torch.device("cpu"))
            k = model.substeps(forcing)
            for n in range(3):
                c, h = model.step(c, h, forcing, n * 10.0, k)
            carried, _ = model.step(c, h, forcing, 30.0, k)
            reset, _ = model.step(c, torch.zeros_like(h), forcing, 30.0, k)
        assert (not torch.equal(carried, reset)) == should_differ, variant


def test_data_only_has_no_physics_step(data):
    forcing, problem, _ = data
    model = build(problem, variant="data_only")
    assert model.substeps(forcing) == 0
    with torch.no_grad():
        out = model.rollout(forcing, 3)
    assert torch.equal(out, torch.zeros_like(out))  # nothing but the (zero-start) closure moves c
    with pytest.raises(ValueError, match="variant"):
        SurrogateSpec(shape=(2, 2), spacing=(1.0, 1.0), output_interval=1.0, initial_diffusivity=0.1, variant="magic")


def test_gradients_reach_diffusivities_velocity_correction_and_closure(data):
    forcing, problem, target = data
    model = noisy(build(problem, closure="encoder_lstm", learn_velocity_correction=True, advection="tvd"), 2)
    pred = model.rollout(forcing, 3)
    ((pred[:, 1:] - target[:, 1:4]) ** 2).mean().backward()
    for name in ("raw_dx", "raw_dy", "dux", "duy"):
        g = getattr(model, name).grad
        assert g is not None and g.abs().max() > 0, name
    assert all(p.grad is not None for p in model.closure.parameters())
    dx, dy = model.diffusivities()
    assert (dx >= 0).all() and (dx[0] == 0).all() and (dx[-1] == 0).all()


def test_training_is_deterministic_and_every_variant_learns(data):
    forcing, problem, target = data
    cfg = TrainConfig(epochs=4, learning_rate=2e-3, seed=3)
    r1 = train(build(problem, seed=5), forcing, target, cfg)
    r2 = train(build(problem, seed=5), forcing, target, cfg)
    assert r1.losses == r2.losses
    for variant in ("physics_only", "markovian", "data_only"):
        r = train(build(problem, variant=variant), forcing, target, TrainConfig(epochs=3, learning_rate=3e-3))
        assert r.best_loss < r.initial_loss, variant


def test_curriculum_and_early_stopping(data):
    forcing, problem, target = data
    cfg = TrainConfig(epochs=6, learning_rate=3e-3, curriculum=(1, 2, 4))
    assert [curriculum_stage(cfg, e, 4) for e in range(6)] == [1, 1, 2, 2, 4, 4]
    model = build(problem)
    val = (forcing.select([2]), target[2:])
    report = train(model, forcing.select([0, 1]), target[:2],
                   TrainConfig(epochs=30, learning_rate=0.05, patience=2, seed=0), validation=val)
    assert report.stopped_early and len(report.validation_losses) < 30
    assert report.best_loss == min([report.validation_losses[0]] + report.validation_losses) or report.best_epoch == -1
    with pytest.raises(ValueError, match="patience"):
        train(model, forcing, target, TrainConfig(epochs=1, learning_rate=3e-3, patience=1))


def test_memory_gate_starts_markovian_opens_by_gradient_and_ends_hybrid(data):
    """γ = clamp(k θ_γ, 0, 1): at θ_γ = 0 the gated hybrid is exactly the Markovian model with the same
    weights, its loss still has a gradient in θ_γ (so training can open the gate), and at γ = 1 it is
    exactly the plain hybrid."""
    forcing, problem, target = data
    markov = noisy(build(problem, variant="markovian"), 3)
    gated = build(problem, memory_gate=True)
    plain = build(problem)
    missing = gated.load_state_dict(markov.state_dict(), strict=False)
    assert missing.missing_keys == ["memory_logit"] and not missing.unexpected_keys
    plain.load_state_dict(markov.state_dict())
    with torch.no_grad():
        assert torch.equal(gated.rollout(forcing, 4), markov.rollout(forcing, 4))
    loss = ((gated.rollout(forcing, 4) - target[:, :5]) ** 2).sum()
    loss.backward()
    assert gated.memory_logit.grad is not None and gated.memory_logit.grad.abs() > 0
    with torch.no_grad():
        gated.memory_logit.fill_(1.0)  # k θ_γ = 20: γ clamps at 1
        assert gated.memory_fraction().item() == 1.0
        assert torch.equal(gated.rollout(forcing, 4), plain.rollout(forcing, 4))
        assert not torch.equal(plain.rollout(forcing, 4), markov.rollout(forcing, 4))
    for bad in ({"variant": "markovian"}, {"closure": "encoder_lstm"}):
        with pytest.raises(ValueError, match="memory_gate"):
            build(problem, memory_gate=True, **bad)
