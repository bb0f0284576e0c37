"""The room layers below and above the band: volume and mass bookkeeping of the lumped 3D scheme."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from closedloop.surrogates.coupling import layer_divergence, plane_problem, spec_for
from closedloop.surrogates import HybridSurrogate, SurrogateSpec
from closedloop.surrogates.layers import LayerForcing, implicit_exchange, vertical_exchange


@pytest.fixture(scope="module")
def layered(room_scenario):
    return plane_problem(room_scenario, layers=True)


def physics(prob, **changes) -> HybridSurrogate:
    spec = dataclasses.replace(spec_for(prob, use_closure=False, room_layers=True), advection="tvd", **changes)
    return HybridSurrogate(spec, prob.mask).double()


def inflow_columns(layers: LayerForcing) -> torch.Tensor:
    """Columns where clean air enters: ceiling/floor inlets or a side inlet in either layer."""
    w = layers.w[0]
    side = torch.zeros_like(w[0], dtype=torch.bool)
    for j in range(2):
        ux, uy = layers.ux[0, j], layers.uy[0, j]
        side[0] |= ux[0] > 0
        side[-1] |= ux[-1] < 0
        side[:, 0] |= uy[:, 0] > 0
        side[:, -1] |= uy[:, -1] < 0
    return (w[0] > 0) | (w[3] < 0) | side


def test_layers_are_the_3d_flow_lumped_without_losing_volume(layered):
    """h ∇·ū + w_top − w_bottom = 0 in every layer column: the layers carry the 3D flow's volume
    exactly, so the band's vertical losses have somewhere to go and come back from."""
    lf, heights = layered.forcing.layers, layered.layer_heights
    assert heights == pytest.approx((1.0, 1.0, 1.0))
    div = layer_divergence(lf, layered.forcing.velocity, layered.spacing, heights)
    assert lf.w.abs().max() > 1e-2  # the flow does cross the band
    assert div.abs().max() < 1e-9
    assert torch.all(lf.dx >= 0) and torch.all(lf.conductance >= 0)
    # the pillar column is solid in every layer; the desk (0–1 m) only below the band
    assert lf.mask[0, 0].sum() < lf.mask[0, 1].sum() == layered.mask.sum()


def test_a_uniform_field_stays_uniform_except_where_clean_air_enters(layered):
    """Explicit horizontal transport then the implicit vertical exchange: since A·1 = ∇·ū per layer,
    c = 1 everywhere is a fixed point away from inlets, and only falls where supply air enters."""
    stable = physics(layered).substeps(layered.forcing)
    model = physics(layered, output_interval=10.0 / stable)  # so that k = 1 is one stable substep
    f = layered.forcing
    still = dataclasses.replace(f, source=torch.zeros_like(f.source))
    c = torch.stack([layered.forcing.layers.mask[0, 0], layered.mask.double(), f.layers.mask[0, 1]])[None]
    out = model.physics_interval(c, still, 100.0, 1)  # window long past: no source
    inflow = inflow_columns(f.layers)
    assert inflow.any()
    fluid = c[0] > 0
    away = fluid & ~inflow[None]
    assert (out[0] - c[0])[away].abs().max() < 1e-9  # the 3D flow is divergence-free to its solver tolerance
    assert out[0][fluid].max() <= 1 + 1e-9 and out[0].min() >= 0
    assert (out[0] - c[0])[:, inflow].min() < -1e-4


def test_implicit_exchange_is_positive_conservative_and_consistent_with_the_fluxes():
    gen = torch.Generator().manual_seed(0)
    shape = (2, 5, 4)
    heights = (1.25, 0.5, 0.75)
    w = torch.randn(2, 4, 5, 4, generator=gen, dtype=torch.float64)
    w[:, [0, 3]] = 0  # closed floor and ceiling: the column's mass is conserved
    lf = LayerForcing(ux=torch.zeros(2, 2, 6, 4, dtype=torch.float64), uy=torch.zeros(2, 2, 5, 5, dtype=torch.float64),
                      dx=torch.zeros(2, 2, 6, 4, dtype=torch.float64), dy=torch.zeros(2, 2, 5, 5, dtype=torch.float64),
                      w=w, conductance=torch.rand(2, 2, 5, 4, generator=gen, dtype=torch.float64),
                      mask=torch.ones(2, 2, 5, 4, dtype=torch.float64))
    lo, band, hi = (torch.rand(shape, generator=gen, dtype=torch.float64) for _ in range(3))
    new = implicit_exchange(lo, band, hi, lf, heights, dt=50.0)  # far beyond the explicit limit
    assert all((x >= 0).all() for x in new)
    mass = lambda cs: sum(h * c for h, c in zip(heights, cs))  # noqa: E731
    assert torch.allclose(mass(new), mass((lo, band, hi)), rtol=1e-12, atol=0)
    # small Δt: (x − c)/Δt → A c, the explicit fluxes
    dt = 1e-5
    new = implicit_exchange(lo, band, hi, lf, heights, dt=dt)
    rates = vertical_exchange(lo, band, hi, lf, heights)
    for x, c, r in zip(new, (lo, band, hi), rates):
        assert torch.allclose((x - c) / dt, r, rtol=1e-3, atol=1e-3)
        assert not torch.allclose((x - c) / dt, 0.9 * r, rtol=1e-3, atol=1e-3)


def rollout_mass(model, f, prob, n_intervals: int = 3) -> tuple[torch.Tensor, float]:
    k = model.substeps(f)
    c, _ = model.initial_state(f, torch.float64, torch.device("cpu"))
    area = prob.spacing[0] * prob.spacing[1]
    heights = torch.tensor(prob.layer_heights, dtype=torch.float64)[None, :, None, None]
    with torch.no_grad():
        for n in range(n_intervals):
            c = model.physics_interval(c, f, prob.output_interval * n, k)
    emitted = float(f.source.sum() * heights[0, 1] * area) * prob.output_interval * n_intervals
    return c, float((c * heights).sum() * area) / emitted


def test_layered_model_keeps_mass_and_positivity_over_a_rollout(layered):
    """In still air (diffusion and the vertical conductance only) the three layers hold exactly what
    was emitted; with the flow, a rollout stays positive and loses mass only through the exhaust."""
    model = physics(layered)
    f = layered.forcing
    zero = lambda x: torch.zeros_like(x)  # noqa: E731
    still = dataclasses.replace(f, velocity=(zero(f.velocity[0]), zero(f.velocity[1])),
                                layers=dataclasses.replace(f.layers, ux=zero(f.layers.ux), uy=zero(f.layers.uy),
                                                           w=zero(f.layers.w)))
    c, kept = rollout_mass(model, still, layered)
    assert kept == pytest.approx(1.0, rel=1e-12)
    assert c[:, 0].sum() > 0 and c[:, 2].sum() > 0  # the conductance spread it out of the band
    c, kept = rollout_mass(model, f, layered)
    assert (c >= 0).all()
    assert 0.5 < kept <= 1 + 1e-12  # 30 s: most of it is still in the room


def test_layer_diffusivity_learns_and_the_spec_round_trips(layered):
    model = physics(layered)
    f = layered.forcing
    pred = model.rollout(f, 2)
    pred[:, -1].pow(2).sum().backward()
    assert model.log_layer_diffusivity.grad is not None and model.log_layer_diffusivity.grad.abs().sum() > 0
    assert model.raw_dx.grad.abs().sum() > 0
    assert SurrogateSpec.from_dict(model.spec.to_dict()) == model.spec
    assert pred.shape == (1, 3, *layered.mask.shape)  # the rollout is the band only


def test_closure_sees_the_layers(layered, randomiser):
    spec = dataclasses.replace(spec_for(layered, hidden_channels=4, room_layers=True), closure_form="multiplicative")
    model = randomiser(HybridSurrogate(spec, layered.mask).double(), scale=0.3).eval()
    f = layered.forcing
    c, h = model.initial_state(f, torch.float64, torch.device("cpu"))
    c = torch.rand(c.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, _ = model.step(c, h, f, 0.0, 0)
    c2 = c.clone()
    c2[:, 2] *= 3  # only the layer above changes
    b, _ = model.step(c2, h, f, 0.0, 0)
    assert not torch.allclose(a[:, 1], b[:, 1])
    assert torch.equal(a[:, 2], c[:, 2])  # the closure corrects the band only


def test_layer_errors_name_the_field(room_scenario, layered):
    plain = plane_problem(room_scenario, layers=False)
    with pytest.raises(ValueError, match="room_layers: the problem has no room layers"):
        spec_for(plain, room_layers=True)
    spec = spec_for(layered, use_closure=False, room_layers=True)
    with pytest.raises(ValueError, match="layer_heights"):
        dataclasses.replace(spec, layer_heights=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="vertical_outflow"):
        dataclasses.replace(spec, vertical_outflow=True)
    model = HybridSurrogate(spec, layered.mask).double()
    with pytest.raises(ValueError, match="room_layers: the model needs Forcing.layers"):
        model.rollout(plain.forcing, 1)
    with pytest.raises(ValueError, match="layers.w: shape"):
        lf = layered.forcing.layers
        dataclasses.replace(lf, w=lf.w[:, :3])
    with pytest.raises(ValueError, match="layers: mix"):
        type(layered.forcing).stack([layered.forcing, plain.forcing])
    floor_band = room_scenario.with_parameters({"plane.z_min": 0.0, "plane.z_max": 1.0})
    assert plane_problem(floor_band).forcing.layers is None  # by default, layers where there is room
    with pytest.raises(ValueError, match="plane: the band .* leaves no room"):
        plane_problem(floor_band, layers=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_layered_rollout_on_cuda_matches_cpu(layered, randomiser):
    spec = dataclasses.replace(spec_for(layered, hidden_channels=4, room_layers=True), closure_form="multiplicative",
                               advection="tvd")
    model = randomiser(HybridSurrogate(spec, layered.mask).double(), scale=0.3).eval()
    with torch.no_grad():
        cpu = model.rollout(layered.forcing, 3)
        gpu = model.to("cuda").rollout(layered.forcing.to("cuda"), 3)
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-10, atol=1e-14)


def test_fused_substep_matches_the_eager_one_with_and_without_gradients(layered, randomiser):
    """compile_physics fuses the layered substep (torch.compile; eager where it cannot compile): the
    same predictions; for inference only the eager path runs under autograd, and with ``training``
    the fused one does, with the same loss and the same gradients as eager to rounding."""
    model = randomiser(physics(layered), scale=0.2)
    f = layered.forcing

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss = (model.rollout(f, 2) ** 2).sum()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    with torch.no_grad():
        eager = model.rollout(f, 2)
    eager_loss, eager_grads = loss_and_grads()
    kernel = model.compile_physics(True)
    with torch.no_grad():
        fused = model.rollout(f, 2)
    assert torch.allclose(fused, eager, rtol=1e-12, atol=1e-15)
    assert kernel.compiled or kernel.fallback_reason
    calls = kernel.first_call_seconds
    loss, grads = loss_and_grads()  # autograd on, inference-only kernel: eager
    assert kernel.first_call_seconds == calls and torch.equal(loss, eager_loss)
    kernel = model.compile_physics(True, training=True)
    loss, grads = loss_and_grads()
    assert kernel.first_call_seconds is not None  # the fused kernel ran under autograd
    assert torch.allclose(loss, eager_loss, rtol=1e-12)
    assert len(grads) == len(eager_grads) and model.raw_dx.grad.abs().sum() > 0
    for g, e in zip(grads, eager_grads):
        assert torch.allclose(g, e, rtol=1e-9, atol=1e-12 * e.abs().max().item())


def test_the_fused_substep_compiles_once_whatever_the_time_step(layered):
    """A campaign rolls out batches whose stable substep (and so Δt) differs; a Δt given to the compiled
    substep as a Python number would be a constant of its graph, compiled again for every new value
    until dynamo's limit, then eager. Δt goes in as a tensor: one graph serves every step."""
    from torch._dynamo.testing import CompileCounter

    from closedloop.surrogates.model import layered_substep

    torch._dynamo.reset()
    counter = CompileCounter()
    model = physics(layered)
    compiled = torch.compile(layered_substep, backend=counter, fullgraph=True)
    model._fused_substep, model._fused_training = compiled, False
    f = layered.forcing
    with torch.no_grad():
        eager = physics(layered).rollout(f, 2)
        assert torch.allclose(model.rollout(f, 2), eager, rtol=1e-12, atol=1e-15)
        model.spec = dataclasses.replace(model.spec, output_interval=0.7 * model.spec.output_interval)  # another Δt
        model.rollout(f, 2)
    assert counter.frame_count == 1
    torch._dynamo.reset()
