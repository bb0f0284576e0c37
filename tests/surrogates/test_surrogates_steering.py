"""Activation steering: hooks, identities, sign, concept directions, effect measures."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from closedloop.surrogates.coupling import batch_problems, spec_for
from closedloop.simulators import load_scenario
from closedloop.surrogates import HybridSurrogate
from closedloop.surrogates.steering import (ConceptDirection, case_activations, concept_direction, dose_response,
                                            effect_measures, record_activations, specificity, steer)
from tests.conftest import ROOM


class Toy(nn.Module):
    """y = w · (A x + b): steering ``hidden`` by α Δ‖h‖/‖Δ‖ moves y by exactly α ‖h‖ (w·Δ̂)."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3, 4)
        self.out = nn.Linear(4, 1)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.eye(4, 3) + 0.1)
            self.hidden.bias.fill_(1.0)
            self.out.weight.copy_(torch.tensor([[1.0, -1.0, 0.5, 0.0]]))
            self.out.bias.zero_()

    def forward(self, x):
        return self.out(self.hidden(x))


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def direction(delta, layer="hidden") -> ConceptDirection:
    return ConceptDirection(layer=layer, delta=torch.as_tensor(delta, dtype=torch.float32), reduce="space_mean",
                            n_a=1, n_b=1, bootstrap_norm_std=0.0, bootstrap_cosine=1.0)


def test_alpha_sign_flips_the_effect_and_zero_is_identity():
    model = Toy()
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    base = model(x)
    d = direction([1.0, 0.0, 0.0, 0.0])  # along a unit the output weighs +1
    with steer(model, d, 0.0):
        assert torch.equal(model(x), base)
    with steer(model, direction([0.0, 0.0, 0.0, 0.0]), 3.0):
        assert torch.equal(model(x), base)
    with steer(model, d, 0.5):
        up = model(x)
    with steer(model, d, -0.5):
        down = model(x)
    h = model.hidden(x)
    expected = 0.5 * h.norm(dim=1, keepdim=True) * 1.0  # w·Δ̂ = w₀ = 1
    assert (up > base).all() and (down < base).all()
    assert torch.allclose(up - base, expected, atol=1e-5) and torch.allclose(base - down, expected, atol=1e-5)
    with steer(model, direction([0.0, 1.0, 0.0, 0.0]), 0.5):  # a unit the output weighs −1
        assert (model(x) < base).all()
    assert no_hooks(model)


def test_hooks_removed_on_exception_and_unknown_layer_named():
    model = Toy()
    with pytest.raises(RuntimeError, match="boom"):
        with steer(model, direction([1.0, 0, 0, 0]), 1.0):
            raise RuntimeError("boom")
    assert no_hooks(model)
    with pytest.raises(RuntimeError, match="boom"):
        with record_activations(model, ["hidden"]):
            raise RuntimeError("boom")
    assert no_hooks(model)
    with pytest.raises(KeyError, match="nope.*layers"):
        with steer(model, direction([1.0, 0, 0, 0], layer="nope"), 1.0):
            pass
    assert no_hooks(model)


def test_direction_from_identical_groups_is_zero_and_bootstrap_reports_stability():
    g = torch.Generator().manual_seed(1)
    acts = torch.randn(8, 5, generator=g)
    d = concept_direction(acts, acts.clone(), "hidden")
    assert d.norm == 0.0
    a = torch.randn(12, 5, generator=g) + torch.tensor([3.0, 0, 0, 0, 0])
    b = torch.randn(12, 5, generator=g)
    d2 = concept_direction(a, b, "hidden", n_bootstrap=100)
    assert d2.delta[0] > 2 and d2.bootstrap_cosine > 0.9 and d2.n_a == d2.n_b == 12
    assert ConceptDirection.from_dict(d2.to_dict()).delta.equal(d2.delta)


@pytest.fixture(scope="module")
def surrogate():
    base = load_scenario(ROOM)
    sc = [base.with_parameters({"time.horizon": 50.0, "source.x": x}) for x in (2.5, 7.0)]
    forcing, problem = batch_problems(sc)
    torch.manual_seed(0)
    model = HybridSurrogate(spec_for(problem, hidden_channels=4), problem.mask).double()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.closure.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model, forcing, problem


def test_record_on_the_closure_and_steer_only_inside_the_step_window(surrogate):
    model, forcing, problem = surrogate
    with torch.no_grad(), record_activations(model, ["closure.candidate"]) as acts:
        base = model.rollout(forcing, problem.n_steps)
    assert len(acts["closure.candidate"]) == problem.n_steps  # one call per rollout step
    per_case = case_activations(acts["closure.candidate"])
    assert per_case.shape == (2, 4)
    d = concept_direction(per_case[:1], per_case[1:], "closure.candidate", n_bootstrap=0)
    with torch.no_grad(), steer(model, d, 2.0, steps=range(2, 4)) as calls:
        steered = model.rollout(forcing, problem.n_steps)
    assert calls["closure.candidate"] == problem.n_steps
    # outputs before the first steered step are identical; from it on they differ
    assert torch.equal(steered[:, :3], base[:, :3])
    assert not torch.equal(steered[:, 3], base[:, 3])
    assert (steered[:, :, ~problem.mask] == 0).all()
    with torch.no_grad(), steer(model, d, 0.0):
        assert torch.equal(model.rollout(forcing, problem.n_steps), base)
    assert no_hooks(model)


def test_effect_measures_on_known_fields_and_dose_response(surrogate):
    nx, ny, h = 40, 30, 0.5
    x = (torch.arange(nx, dtype=torch.float64) + 0.5) * h
    y = (torch.arange(ny, dtype=torch.float64) + 0.5) * h
    s = 1.5
    blob = torch.exp(-((x[:, None] - 8.0) ** 2 + (y[None, :] - 6.0) ** 2) / (2 * s * s))
    moved = torch.exp(-((x[:, None] - 12.0) ** 2 + (y[None, :] - 6.0) ** 2) / (2 * s * s))
    series = torch.stack([torch.zeros_like(blob), blob, 0.5 * moved])[None]
    m = effect_measures(series, (h, h), target=series)
    assert m["centroid_x"].item() == pytest.approx(12.0, abs=1e-6)
    assert m["centroid_drift"].item() == pytest.approx(4.0, abs=1e-6)
    assert m["spread"].item() == pytest.approx(2 * s * s, rel=1e-3)  # E|r|² = 2σ² in 2D
    assert m["peak_x"].item() == pytest.approx(11.75) and m["distance"].item() == 0.0
    assert m["decay_rate"].item() == pytest.approx(math.log(2), rel=1e-9)

    model, forcing, problem = surrogate
    with torch.no_grad(), record_activations(model, ["closure.candidate"]) as acts:
        model.rollout(forcing, problem.n_steps)
    per_case = case_activations(acts["closure.candidate"])
    d = concept_direction(per_case[:1], per_case[1:], "closure.candidate", n_bootstrap=0)
    resp = dose_response(lambda: model.rollout(forcing, problem.n_steps), model, d, [-1.0, 0.0, 1.0],
                         lambda s: effect_measures(s, problem.spacing, problem.mask))
    assert resp["mass"].shape == (3, 2)
    spec = specificity(resp, "mass")
    assert set(spec) >= {"peak", "spread"} and all(v >= 0 for v in spec.values())
