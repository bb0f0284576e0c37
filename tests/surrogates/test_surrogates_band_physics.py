"""The band's vertical exchange, the bounded multiplicative closure and the physics warm-up."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from closedloop.surrogates.coupling import plane_problem, spec_for
from closedloop.physics import Grid, advect_upwind
from closedloop.surrogates import HybridSurrogate
from closedloop.surrogates.training import TrainConfig, train


def test_outflow_sink_restores_the_maximum_principle_of_the_band(room_scenario):
    """The band-mean flow is not 2D divergence-free: where it converges, air leaves the band
    vertically. Flux-form advection alone then makes a uniform field grow there; with the vertical
    outflow sink a uniform field can only fall (its rate is −inflow·c ≤ 0)."""
    prob = plane_problem(room_scenario)
    outflow = prob.forcing.outflow
    assert outflow is not None and outflow.shape == (1, *prob.mask.shape)
    assert torch.all(outflow >= 0) and torch.all(outflow[0][~prob.mask] == 0)
    grid = Grid(shape=tuple(prob.mask.shape), spacing=prob.spacing)
    c = prob.mask.to(torch.float64)[None]
    rate = advect_upwind(c, prob.forcing.velocity, grid) * c
    assert rate.max() > 1e-4  # without the sink: spurious growth where the band flow converges
    assert (rate - outflow * c).max() <= 1e-12


def test_multiplicative_closure_is_bounded_positive_and_creates_nothing_from_zero(room_scenario, randomiser):
    prob = plane_problem(room_scenario.with_parameters({"source.start": 10.0}))
    spec = dataclasses.replace(spec_for(prob, hidden_channels=4), closure_form="multiplicative")
    model = randomiser(HybridSurrogate(spec, prob.mask).double(), scale=0.5).eval()
    physics = HybridSurrogate(spec_for(prob, use_closure=False), prob.mask).double().eval()
    with torch.no_grad():
        pred = model.rollout(prob.forcing, prob.n_steps)
        phys = physics.rollout(prob.forcing, prob.n_steps)
        # one step from the same state: the closure scales the physics result by a factor in (0, 2)
        c0 = phys[:, 2]
        stepped, _ = model.step(c0, model.initial_state(prob.forcing, c0.dtype, c0.device)[1],
                                prob.forcing, 20.0, model.substeps(prob.forcing))
        physics_only = model.physics_interval(c0, prob.forcing, 20.0, model.substeps(prob.forcing))
    assert torch.all(pred >= 0)
    assert torch.count_nonzero(pred[:, :2]) == 0  # nothing before the source starts
    assert torch.all(pred[0, -1][~prob.mask] == 0)
    assert torch.all(stepped <= 2 * physics_only + 1e-15) and torch.all(stepped >= 0)
    assert not torch.allclose(stepped, physics_only)  # the randomised closure does act
    # with a gain g the factor stays in [1 − g, 1 + g], and the bound is reached by a strong closure
    gentle = HybridSurrogate(dataclasses.replace(spec, closure_gain=0.1), prob.mask).double()
    gentle.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in gentle.closure.head.parameters():
            p.mul_(100.0)
        h0 = gentle.initial_state(prob.forcing, c0.dtype, c0.device)[1]
        soft, _ = gentle.step(c0, h0, prob.forcing, 20.0, gentle.substeps(prob.forcing))
    inside = physics_only > 1e-12
    ratio = soft[inside] / physics_only[inside]
    assert ratio.min() >= 0.9 - 1e-12 and ratio.max() <= 1.1 + 1e-12
    assert ratio.max() > 1.09 or ratio.min() < 0.91
    with pytest.raises(ValueError, match="closure_gain"):
        dataclasses.replace(spec, closure_gain=0.0)


def test_physics_warmup_fits_the_physics_fields_while_the_closure_waits(room_scenario):
    prob = plane_problem(room_scenario)
    spec = dataclasses.replace(spec_for(prob, hidden_channels=4, learn_sink=True), closure_form="multiplicative")
    model = HybridSurrogate(spec, prob.mask).double()
    target = HybridSurrogate(spec_for(prob, use_closure=False), prob.mask).double()
    with torch.no_grad():
        target.raw_dx.add_(1.0)
        target.raw_dy.add_(1.0)  # a more diffusive "truth"
        ref = target.rollout(prob.forcing, prob.n_steps)
    closure0 = {k: v.clone() for k, v in model.closure.state_dict().items()}
    dx0 = model.raw_dx.detach().clone()
    cfg = TrainConfig(epochs=2, physics_warmup_epochs=2, learning_rate=1e-2, physics_learning_rate=5e-2, seed=0)
    report = train(model, prob.forcing, ref, cfg)
    assert all(torch.equal(v, closure0[k]) for k, v in model.closure.state_dict().items())
    assert not torch.equal(model.raw_dx.detach(), dx0) and report.best_loss < report.initial_loss
    # after the warm-up the closure trains too
    train(model, prob.forcing, ref, dataclasses.replace(cfg, epochs=3, physics_warmup_epochs=0))
    assert not all(torch.equal(v, closure0[k]) for k, v in model.closure.state_dict().items())


def test_additive_closure_clamps_to_zero_but_still_learns_from_undershoot(room_scenario):
    """The data-only model starts from c̄ = 0; a closure that pushes below zero is clamped to 0 in
    the prediction, and the straight-through clamp still passes the gradient back."""
    prob = plane_problem(room_scenario)
    spec = dataclasses.replace(spec_for(prob, hidden_channels=4), variant="data_only")
    model = HybridSurrogate(spec, prob.mask).double()
    with torch.no_grad():
        model.closure.head.bias.fill_(-1.0)
    pred = model.rollout(prob.forcing, prob.n_steps)
    assert torch.all(pred == 0)
    (pred - 1.0).pow(2).sum().backward()
    assert model.closure.head.bias.grad is not None and model.closure.head.bias.grad.abs().item() > 0


def test_mixed_scale_sizes_the_additive_closure_by_the_well_mixed_increment(room_scenario):
    """With ``closure_scale = "mixed"`` an additive correction M adds M·⟨S̄⟩Δt (⟨·⟩ over fluid cells),
    not M·S̄_max·Δt: the same closure output then means the far-field concentration a well-mixed band
    would gain in one interval. Solids get nothing either way."""
    prob = plane_problem(room_scenario)
    peak = HybridSurrogate(dataclasses.replace(spec_for(prob, hidden_channels=4), closure_form="additive"),
                           prob.mask).double()
    mixed = HybridSurrogate(dataclasses.replace(peak.spec, closure_scale="mixed"), prob.mask).double()
    mixed.load_state_dict(peak.state_dict())
    bias = 0.3
    for model in (peak, mixed):
        with torch.no_grad():
            model.closure.head.bias.fill_(bias)  # head weights are zero: M = bias everywhere
    f = prob.forcing
    c0 = torch.zeros(1, *prob.mask.shape, dtype=torch.float64)
    k = peak.substeps(f)
    with torch.no_grad():
        physics = peak.physics_interval(c0, f, 0.0, k)
        stepped = {name: m.step(c0, m.initial_state(f, c0.dtype, c0.device)[1], f, 0.0, k)[0] - physics
                   for name, m in (("peak", peak), ("mixed", mixed))}
    fluid = prob.mask
    dt = peak.spec.output_interval
    s_peak = f.source.amax() * dt
    s_mixed = f.source[0][fluid].mean() * dt
    assert torch.allclose(stepped["peak"][0][fluid], bias * s_peak * torch.ones(()), rtol=1e-12)
    assert torch.allclose(stepped["mixed"][0][fluid], bias * s_mixed * torch.ones(()), rtol=1e-12)
    assert torch.count_nonzero(stepped["mixed"][0][~fluid]) == 0
    assert s_peak > 20 * s_mixed  # the point of the option: a concentrated source's peak dwarfs the mean
    with pytest.raises(ValueError, match="closure_scale"):
        dataclasses.replace(peak.spec, closure_scale="median")
