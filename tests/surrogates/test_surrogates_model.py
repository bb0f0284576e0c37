"""The hybrid surrogate: physics part, masked diffusivities, the memory closure, scaling, checkpoints."""
from __future__ import annotations

import io
import math

import pytest
import torch

from closedloop.surrogates.checkpoint import load_model
from closedloop.surrogates.coupling import batch_problems, plane_problem, spec_for
from closedloop.surrogates import Forcing, HybridSurrogate, SurrogateSpec
from closedloop.surrogates.closure import ConvGRUClosure


def build(problem, *, closure=True, hidden=4, seed=0):
    torch.manual_seed(seed)
    return HybridSurrogate(spec_for(problem, hidden_channels=hidden, use_closure=closure),
                           problem.mask).double().eval()


def still_air(forcing: Forcing) -> Forcing:
    return Forcing(velocity=tuple(torch.zeros_like(u) for u in forcing.velocity),  # type: ignore[arg-type]
                   source=forcing.source, window=forcing.window)


@pytest.fixture(scope="module")
def problem(room_scenario):
    return plane_problem(room_scenario)


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


# ------------------------------------------------------------------------ closure memory
def test_closure_correction_depends_on_earlier_inputs():
    torch.manual_seed(1)
    cl = ConvGRUClosure(5, 4).double()
    with torch.no_grad():
        cl.head.weight.normal_(0, 0.3)
    xs = [torch.randn(1, 5, 6, 5, dtype=torch.float64) for _ in range(4)]

    def run(seq):
        h = cl.initial_state(seq[0])
        outs = []
        for x in seq:
            corr, h = cl(x, h)
            outs.append(corr)
        return outs, h

    with torch.no_grad():
        base, _ = run(xs)
        changed, _ = run([xs[0] + 1.0] + xs[1:])
        fresh, _ = cl(xs[-1], cl.initial_state(xs[-1]))
    assert base[-1].shape == (1, 6, 5)
    assert torch.equal(base[0], run(xs[:1])[0][0])  # causal: step 0 sees only step 0
    # the last correction remembers the first input
    assert (base[-1] - changed[-1]).abs().max() > 1e-6
    # a fresh hidden state forgets the history
    assert (base[-1] - fresh).abs().max() > 1e-6


def test_global_context_lets_a_far_change_reach_the_memory_in_one_step():
    """A 3 × 3 ConvGRU cannot see a change 10 cells away within one step; with the global context
    (the plane mean of its inputs and memory) it can."""
    torch.manual_seed(2)
    x = torch.randn(1, 5, 12, 6, dtype=torch.float64)
    far = x.clone()
    far[0, :, 11, 5] += 3.0  # a change at the far corner
    for context, reaches in ((False, False), (True, True)):
        cl = ConvGRUClosure(5, 4, global_context=context).double()
        with torch.no_grad():
            cl.head.weight.normal_(0, 0.3)
            h0 = cl.initial_state(x)
            a, ha = cl(x, h0)
            b, hb = cl(far, h0)
        moved = (ha[0, :, 0, 0] - hb[0, :, 0, 0]).abs().max() > 1e-9
        assert bool(moved) == reaches


def test_zero_head_closure_adds_nothing_whatever_the_input():
    cl = ConvGRUClosure(5, 3).double()
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    h = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    corr, h_new = cl(x, h)
    assert torch.count_nonzero(corr) == 0
    assert not torch.equal(h_new, h)  # but the memory is updated


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


# ------------------------------------------------------------------------ spec and checkpoints
def test_spec_dict_round_trip(problem):
    spec = spec_for(problem, hidden_channels=5, use_closure=False)
    d = spec.to_dict()
    assert isinstance(d["shape"], list)
    assert SurrogateSpec.from_dict(d) == spec
    assert spec.initial_diffusivity == problem.eddy_diffusivity
    assert math.isclose(spec.output_interval, 10.0)


def test_mask_shape_must_match_spec(problem):
    spec = spec_for(problem)
    with pytest.raises(ValueError, match="mask shape"):
        HybridSurrogate(spec, problem.mask[:-1])


def _saved(model) -> dict:
    buf = io.BytesIO()
    torch.save({"spec": model.spec.to_dict(), "state_dict": model.state_dict()}, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_checkpoint_round_trip_bitwise(problem, randomiser):
    model = randomiser(build(problem), seed=5)
    ck = _saved(model)
    spec = SurrogateSpec.from_dict(ck["spec"])
    again = HybridSurrogate(spec, ck["state_dict"]["mask"].bool()).double()
    again.load_state_dict(ck["state_dict"])
    again.eval()
    with torch.no_grad():
        a = model.rollout(problem.forcing, problem.n_steps)
        b = again.rollout(problem.forcing, problem.n_steps)
    assert torch.equal(a, b)


def test_campaign_load_model_round_trip_bitwise(problem, randomiser):
    model = randomiser(build(problem), seed=5)
    again = load_model(_saved(model))
    with torch.no_grad():
        a = model.rollout(problem.forcing, problem.n_steps)
        b = again.rollout(problem.forcing, problem.n_steps)
    assert torch.equal(a, b)
