"""Steering controls and transfer: random directions of equal norm, slopes across scenario families."""
from __future__ import annotations

import pytest
import torch

from closedloop.surrogates.steering import (ConceptDirection, directions_payload, random_direction, response_slope,
                                            transfer)


def test_random_direction_keeps_norm_and_shape_but_not_orientation():
    d = ConceptDirection(layer="l", delta=torch.tensor([3.0, 4.0, 0.0, 0.0]), reduce="space_mean", n_a=2, n_b=2,
                         bootstrap_norm_std=0.0, bootstrap_cosine=1.0, checkpoint_id="abc", concept="fast")
    cos = []
    for seed in range(20):
        r = random_direction(d, seed)
        assert r.delta.shape == d.delta.shape and r.norm == pytest.approx(5.0)
        assert r.layer == "l" and r.checkpoint_id == "abc"
        cos.append(float((r.delta @ d.delta) / 25.0))
    assert abs(sum(cos) / len(cos)) < 0.35 and max(cos) - min(cos) > 0.5  # orientations spread out
    assert not torch.equal(random_direction(d, 0).delta, random_direction(d, 1).delta)
    with pytest.raises(ValueError, match="checkpoint"):
        directions_payload([d], "xyz")


def test_transfer_is_the_ratio_of_dose_response_slopes():
    alphas = [-1.0, 0.0, 1.0, 2.0]
    a = torch.tensor(alphas)[:, None]
    responses = {"static": {"spread": 2.0 + 0.5 * a.expand(4, 3)},
                 "moving": {"spread": 1.0 + 0.25 * a.expand(4, 2)},
                 "hall": {"spread": 3.0 - 0.5 * a.expand(4, 1)}}
    assert response_slope(responses["static"], alphas, "spread") == pytest.approx(0.5)
    t = transfer(responses, alphas, "spread", source="static")
    assert t == pytest.approx({"static": 1.0, "moving": 0.5, "hall": -1.0})
    with pytest.raises(ValueError, match="does not move"):
        transfer({"flat": {"spread": torch.ones(4, 1)}}, alphas, "spread", source="flat")
