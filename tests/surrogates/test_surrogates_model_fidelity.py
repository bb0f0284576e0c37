"""The surrogate across fidelities: the level as an input (a diffusivity shift and a closure channel)."""
from __future__ import annotations

import dataclasses

import torch

from closedloop.surrogates import Forcing, HybridSurrogate
from closedloop.surrogates.coupling import plane_problem, spec_for
from closedloop.surrogates.spec import SurrogateSpec


def two_level_model(problem, closure: bool, shift: float = 0.0, seed: int = 0) -> HybridSurrogate:
    torch.manual_seed(seed)
    model = HybridSurrogate(spec_for(problem, hidden_channels=4, use_closure=closure, fidelity_levels=2),
                            problem.mask).double().eval()
    with torch.no_grad():
        model.fidelity_shift.fill_(shift)
    return model


def at_levels(forcing: Forcing, levels: list[float]) -> Forcing:
    batch = Forcing.stack([forcing] * len(levels))
    return dataclasses.replace(batch, fidelity=torch.tensor(levels, dtype=torch.float64))


def test_top_level_is_the_model_without_levels(problem, randomiser):
    """At s = 1 (or with no level given) the two-level model is the one-level model with its weights."""
    two = randomiser(two_level_model(problem, closure=True, shift=0.7))
    one_spec = dataclasses.replace(two.spec, fidelity_levels=1)
    one = HybridSurrogate(one_spec, problem.mask).double().eval()
    state = {k: v for k, v in two.state_dict().items() if k != "fidelity_shift"}
    # the closure's convolutions see one more input channel (1 − s, the last input), zero at the top
    # level: [inputs, h] in the gates, [h, inputs] in the head
    n_in = one.closure.gates.in_channels - one.closure.hidden_channels
    for name, value in one.state_dict().items():
        if value.shape != state[name].shape:
            drop = state[name].shape[1] - 1 if name.startswith("closure.head") else n_in
            keep = [c for c in range(state[name].shape[1]) if c != drop]
            state[name] = state[name][:, keep]
    one.load_state_dict(state)
    with torch.no_grad():
        top = two.rollout(at_levels(problem.forcing, [1.0]), problem.n_steps)
        unset = two.rollout(problem.forcing, problem.n_steps)
        plain = one.rollout(problem.forcing, problem.n_steps)
    torch.testing.assert_close(top, plain, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(unset, plain, rtol=1e-12, atol=1e-14)


def test_a_lower_level_diffuses_more_and_conserves_mass(room_scenario):
    """In still air a positive shift spreads the plume further at s = 0, while the plane's mass
    stays exactly the emitted mass at both levels; the shift is a physics parameter with a gradient."""
    prob = plane_problem(room_scenario)
    still = dataclasses.replace(prob.forcing, velocity=tuple(torch.zeros_like(u) for u in prob.forcing.velocity))
    model = two_level_model(prob, closure=False, shift=1.5)
    with torch.no_grad():
        pred = model.rollout(at_levels(still, [0.0, 1.0]), prob.n_steps)
    h2 = prob.spacing[0] * prob.spacing[1]
    mass = pred.sum(dim=(-2, -1)) * h2
    torch.testing.assert_close(mass[0], mass[1], rtol=1e-12, atol=0.0)
    assert pred[0, -1].max() < 0.9 * pred[1, -1].max()  # the coarse level's plume is flatter
    out = model.rollout(at_levels(still, [0.0]), prob.n_steps)
    (out[:, -1] ** 2).sum().backward()
    assert model.fidelity_shift.grad is not None and float(model.fidelity_shift.grad.abs()) > 0


def test_spec_round_trip_keeps_old_checkpoints_byte_identical(problem):
    spec = spec_for(problem, hidden_channels=4)
    assert "fidelity_levels" not in spec.to_dict()
    two = dataclasses.replace(spec, fidelity_levels=2)
    assert SurrogateSpec.from_dict(two.to_dict()) == two and SurrogateSpec.from_dict(spec.to_dict()) == spec
