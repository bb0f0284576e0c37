"""Groups A and B of a concept: the base cases are held out, and the directions measured from the groups
belong to the checkpoint they were measured on."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from closedloop.lab import steering
from closedloop.surrogates.steering import directions_from_payload


def test_groups_hold_out_base_cases_and_directions_belong_to_their_checkpoint(camp: Path):
    campaign = steering.open_campaign(camp)
    config = steering.SteeringConfig(concept="inlet_speed", base_cases=1, n_bootstrap=10)
    layers = steering.check_config(campaign, config)
    assert layers == ["closure.gates", "closure.candidate"]  # the one-channel head has no direction
    groups = steering.select_groups(campaign, config)
    assert list(groups.base["inlet_speed"]) == [0.3]  # the low case farthest from the median
    assert sorted(groups.b["inlet_speed"]) == [0.4, 0.6] and sorted(groups.a["inlet_speed"]) == [1.1, 1.3, 1.5]
    assert groups.target_value == pytest.approx(1.3)
    (target,) = steering.target_scenarios(campaign, groups)
    assert target.target_parameters == {**target.base_parameters, "inlet_speed": pytest.approx(1.3)}
    directions = steering.measure_directions(campaign, groups, layers, n_bootstrap=10)
    assert [d.layer for d in directions] == layers and all(d.n_a == 3 and d.n_b == 2 for d in directions)
    assert all(d.norm > 0 and d.checkpoint_id == campaign.checkpoint_id for d in directions)
    path = steering.save_directions(campaign, directions, config.name)
    payload = torch.load(path, weights_only=True)
    back = directions_from_payload(payload, campaign.checkpoint_id)
    assert all(torch.equal(a.delta, b.delta) for a, b in zip(directions, back))
    with pytest.raises(ValueError, match="^checkpoint_id: "):
        directions_from_payload(payload, "another-checkpoint")
