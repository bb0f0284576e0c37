"""The hybrid surrogate: physics part, masked diffusivities, the memory it carries, scaling, the sink."""
from __future__ import annotations

import pytest
import torch

from closedloop.surrogates import Forcing, HybridSurrogate
from closedloop.surrogates.coupling import batch_problems, plane_problem, spec_for
from tests.surrogates.hybrid_builders import build


def still_air(forcing: Forcing) -> Forcing:
    return Forcing(velocity=tuple(torch.zeros_like(u) for u in forcing.velocity),  # type: ignore[arg-type]
                   source=forcing.source, window=forcing.window)


# ------------------------------------------------------------------------ physics-only start
def test_untrained_closure_is_exactly_physics_only(problem):
    hybrid, physics = build(problem, closure=True), build(problem, closure=False)
    assert hybrid.closure is not None and physics.closure is None
    assert torch.count_nonzero(hybrid.closure.head.weight) == 0
    with torch.no_grad():
        a = hybrid.rollout(problem.forcing, problem.n_steps)
        b = physics.rollout(problem.forcing, problem.n_steps)
    assert a.shape == (1, problem.n_steps + 1, *problem.mask.shape)
    assert a.abs().max() > 0
    assert torch.equal(a, b)


def test_rollout_starts_at_zero_and_stays_zero_in_solid_cells(problem, randomiser):
    model = randomiser(build(problem))
    with torch.no_grad():
        pred = model.rollout(problem.forcing, problem.n_steps)
    assert torch.count_nonzero(pred[:, 0]) == 0
    solid = ~problem.mask
    assert solid.any()
    assert torch.count_nonzero(pred[:, :, solid]) == 0
    assert torch.isfinite(pred).all()


# ------------------------------------------------------------------------ diffusivities
def test_diffusivities_nonnegative_and_zero_on_closed_faces(problem, randomiser):
    model = build(problem)
    with torch.no_grad():  # wild raw values, as after aggressive training
        model.raw_dx.copy_(5 * torch.randn_like(model.raw_dx) - 3)
        model.raw_dy.copy_(5 * torch.randn_like(model.raw_dy) - 3)
    dx, dy = model.diffusivities()
    nx, ny = problem.mask.shape
    assert dx.shape == (nx + 1, ny) and dy.shape == (nx, ny + 1)
    assert (dx >= 0).all() and (dy >= 0).all()
    # box boundary closed
    assert torch.count_nonzero(dx[0]) == 0 and torch.count_nonzero(dx[-1]) == 0
    assert torch.count_nonzero(dy[:, 0]) == 0 and torch.count_nonzero(dy[:, -1]) == 0
    # every face of a solid plane cell closed
    solid = (~problem.mask).nonzero().tolist()
    assert solid
    for i, j in solid:
        assert dx[i, j] == 0 and dx[i + 1, j] == 0 and dy[i, j] == 0 and dy[i, j + 1] == 0
    # every face between two fluid cells open (softplus > 0)
    m = problem.mask
    inner_x = m[:-1, :] & m[1:, :]
    inner_y = m[:, :-1] & m[:, 1:]
    assert (dx[1:-1][inner_x] > 0).all() and (dy[:, 1:-1][inner_y] > 0).all()
    assert torch.count_nonzero(dx[1:-1][~inner_x]) == 0
    assert torch.count_nonzero(dy[:, 1:-1][~inner_y]) == 0


def test_initial_diffusivity_equals_eddy_diffusivity(problem):
    dx, dy = build(problem).diffusivities()
    k = problem.eddy_diffusivity
    open_x = dx[dx > 0]
    assert open_x.numel() > 0
    assert torch.allclose(open_x, torch.full_like(open_x, k), rtol=1e-6, atol=0)
    assert torch.allclose(dy[dy > 0], torch.full_like(dy[dy > 0], k), rtol=1e-6, atol=0)


# ------------------------------------------------------------------------ mass budget
@pytest.mark.parametrize("closure", [False, True])
def test_still_air_plane_mass_grows_by_exactly_the_emitted_mass(room_scenario, closure):
    """With ū = 0 the physics is diffusion (closed at walls) plus the source: plane mass is zero
    until the source switches on and then grows by exactly Σ S̄ h² per second."""
    start = 10.0
    scen = room_scenario.with_parameters({"source.start": start})
    prob = plane_problem(scen)
    forcing = still_air(prob.forcing)
    model = build(prob, closure=closure)
    with torch.no_grad():
        pred = model.rollout(forcing, prob.n_steps)
    h2 = prob.spacing[0] * prob.spacing[1]
    mass = pred[0].sum(dim=(-2, -1)) * h2
    rate = prob.forcing.source[0].sum().item() * h2
    assert rate > 0
    times = torch.tensor(scen.time.output_times(), dtype=torch.float64)
    expected = (times - start).clamp_min(0) * rate
    assert torch.count_nonzero(pred[0, :2]) == 0  # t = 0 and t = 10: source still off
    assert torch.allclose(mass, expected, rtol=1e-12, atol=1e-12 * rate)
    # and it diffused: more than the source cells hold mass at the end
    assert (pred[0, -1] > 0).sum() > (prob.forcing.source[0] > 0).sum()


# ------------------------------------------------------------------------ memory


def test_model_step_uses_carried_memory(problem, randomiser):
    model = randomiser(build(problem))
    forcing, k = problem.forcing, model.substeps(problem.forcing)
    with torch.no_grad():
        c, h = model.initial_state(forcing, torch.float64, torch.device("cpu"))
        for n in range(2):
            c, h = model.step(c, h, forcing, n * problem.output_interval, k)
        assert h is not None and h.abs().max() > 0
        carried, _ = model.step(c, h, forcing, 2 * problem.output_interval, k)
        fresh, _ = model.step(c, torch.zeros_like(h), forcing, 2 * problem.output_interval, k)
    assert (carried - fresh).abs().max() > 1e-9 * carried.abs().max()


# ------------------------------------------------------------------------ scale equivariance
@pytest.mark.parametrize("factor", [2.0, 3.0, 0.1])
def test_prediction_linear_in_source_rate(room_scenario, randomiser, factor):
    """model.py claims the closure is equivariant to the emission rate, like the equation."""
    rate = room_scenario.source.rate
    scaled = room_scenario.with_parameters({"source.rate": rate * factor})
    forcing, prob = batch_problems([room_scenario, scaled])
    model = randomiser(build(prob), seed=3, scale=0.3)
    assert model.closure.head.weight.abs().max() > 0
    with torch.no_grad():
        pred = model.rollout(forcing, prob.n_steps)
    base, big = pred[0], pred[1]
    err = (big - factor * base).abs().max() / (factor * base).abs().max()
    assert err < 1e-10
    # a non-equivariant control: the physics-only prediction of the same model differs
    physics = build(prob, closure=False)
    with torch.no_grad():
        phys = physics.rollout(forcing.select([0]), prob.n_steps)[0]
    assert (phys - base).abs().max() > 1e-6 * base.abs().max()


# ------------------------------------------------------------------------ spec and sink


def test_mask_shape_must_match_spec(problem):
    spec = spec_for(problem)
    with pytest.raises(ValueError, match="mask shape"):
        HybridSurrogate(spec, problem.mask[:-1])


def test_exchange_sink_gives_the_exact_relaxation_mass(room_scenario):
    """dM/dt = R − λM with uniform λ, no flow, source on: M(t) = R(1 − e^{−λt})/λ, to the forward
    Euler error, which shrinks with the substep; λ is ≥ 0, masked and learnable."""
    import dataclasses

    scen = room_scenario.with_parameters({"time.horizon": 60.0})
    prob = plane_problem(scen)
    lam0 = 0.05
    spec = dataclasses.replace(spec_for(prob, use_closure=False), learn_sink=True, initial_sink=lam0)
    model = HybridSurrogate(spec, prob.mask).double().eval()
    assert model.log_sink.requires_grad and torch.all(model.sink()[~prob.mask] == 0)
    assert torch.allclose(model.sink()[prob.mask], torch.tensor(lam0, dtype=torch.float64))
    still = Forcing(velocity=tuple(torch.zeros_like(u) for u in prob.forcing.velocity),  # type: ignore[arg-type]
                    source=prob.forcing.source, window=prob.forcing.window)
    h2 = prob.spacing[0] * prob.spacing[1]
    rate = prob.forcing.source[0].sum().item() * h2
    with torch.no_grad():
        mass = model.rollout(still, prob.n_steps)[0].sum(dim=(-2, -1)) * h2
    t = torch.tensor(scen.time.output_times(), dtype=torch.float64)
    exact = rate * (1 - torch.exp(-lam0 * t)) / lam0
    k = model.substeps(still)
    rel = ((mass - exact).abs()[1:] / exact[1:]).max().item()
    assert rel < 0.5 * lam0 * 10 / k + 1e-9  # first order in the substep
    assert mass[-1] < rate * 60 * 0.5  # without the sink the plane would hold all R·t
    with pytest.raises(ValueError, match="initial_sink"):
        dataclasses.replace(spec, initial_sink=-1.0)
