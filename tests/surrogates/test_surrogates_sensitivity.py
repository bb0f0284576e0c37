"""The sketched parameter information of a scenario: exact against autograd, symmetric PSD, harmless."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from closedloop.surrogates.coupling import plane_problem, spec_for
from closedloop.surrogates import HybridSurrogate
from closedloop.surrogates.sensitivity import fisher_sketch, parameter_directions


def exact_directional(model: HybridSurrogate, forcing, n_steps: int, direction: list[torch.Tensor]) -> torch.Tensor:
    """J u of the normalised prediction by reverse mode twice: J u = ∂/∂v [(Jᵀv) · u] (v a dummy)."""
    params = [p for p in model.parameters() if p.requires_grad]
    pred = model.rollout(forcing, n_steps)[:, 1:].reshape(forcing.batch_size, -1)
    r = pred / pred.norm(dim=1, keepdim=True)
    v = torch.zeros_like(r, requires_grad=True)
    jt_v = torch.autograd.grad(r, params, grad_outputs=v, create_graph=True, allow_unused=True)
    dot = sum((g * u).sum() for g, u in zip(jt_v, direction) if g is not None)
    return torch.autograd.grad(dot, v)[0]


@pytest.mark.parametrize("differences, rtol", [("central", 1e-5), ("forward", 2e-5)])
def test_sketch_matches_autograd_and_leaves_the_model_as_it_was(room_scenario, randomiser, differences, rtol):
    prob = plane_problem(room_scenario)
    # the multiplicative closure: smooth, so autograd's derivative is the forward map's (the additive
    # closure's straight-through clamp at 0 is not, where it clamps)
    spec = dataclasses.replace(spec_for(prob, hidden_channels=4, learn_sink=True), closure_form="multiplicative",
                               closure_gain=0.5)
    model = randomiser(HybridSurrogate(spec, prob.mask).double(), scale=0.05)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    k = 3
    info = fisher_sketch(model, prob.forcing, prob.n_steps, k=k, seed=7, differences=differences)
    assert info.shape == (1, k, k)
    assert all(torch.equal(v, before[name]) for name, v in model.state_dict().items())
    assert torch.allclose(info, info.transpose(1, 2)) and torch.linalg.eigvalsh(info).min() > -1e-12
    columns = torch.stack([exact_directional(model, prob.forcing, prob.n_steps, u)
                           for u in parameter_directions(model, k, seed=7)], dim=2)
    exact = columns.transpose(1, 2) @ columns
    assert torch.allclose(info, exact, rtol=rtol, atol=1e-10 * exact.abs().max())
    assert exact.diagonal(dim1=1, dim2=2).min() > 0  # every direction moves the prediction


def test_emission_rate_drops_out_and_fixed_physics_teaches_nothing(room_scenario):
    """The relative loss ignores the emission rate, so does the information; a model whose only
    trainable fields are frozen has nothing to learn and is refused."""
    low = plane_problem(room_scenario)
    high = plane_problem(room_scenario.with_parameters({"source.rate": 4 * room_scenario.source.rate}))
    physics = HybridSurrogate(spec_for(low, use_closure=False), low.mask).double()
    a = fisher_sketch(physics, low.forcing, low.n_steps, k=4, seed=1)
    b = fisher_sketch(physics, high.forcing, high.n_steps, k=4, seed=1)
    assert torch.allclose(a, b, rtol=1e-6)
    frozen = HybridSurrogate(dataclasses.replace(physics.spec, learn_diffusivity=False), low.mask).double()
    try:
        fisher_sketch(frozen, low.forcing, low.n_steps)
    except ValueError as err:
        assert "no trainable parameters" in str(err)
    else:
        raise AssertionError("a model without trainable parameters must be refused")


def test_unknown_difference_scheme_is_refused(room_scenario):
    prob = plane_problem(room_scenario)
    physics = HybridSurrogate(spec_for(prob, use_closure=False), prob.mask).double()
    with pytest.raises(ValueError, match="differences: unknown 'backward'"):
        fisher_sketch(physics, prob.forcing, prob.n_steps, k=2, differences="backward")
