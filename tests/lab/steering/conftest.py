"""Steering steps on a campaign: bad requests are refused by field name before any compute."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from closedloop.lab import steering
from closedloop.lab.steering import targets
from closedloop.surrogates.steering import directions_from_payload
from tests.lab.steering_campaign import make_campaign


@pytest.fixture(scope="module")
def camp(tmp_path_factory) -> Path:
    return make_campaign(tmp_path_factory.mktemp("steer"))


@pytest.fixture()
def no_simulation(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a bad request must fail before any simulation")
    monkeypatch.setattr(targets, "simulate", refuse)


@pytest.mark.parametrize("kwargs, field", [
    ({"concept": "pillar_width"}, "concept"),
    ({"layers": ["closure.nope"]}, "layers"),
    ({"split": 5.0}, "split"),  # every inlet speed is below: group A is empty
    ({"split": 0.1}, "split"),  # group B is empty
    ({"base_cases": 3}, "base_cases"),  # three low cases, all held out: nothing left for B
])
def test_bad_requests_name_the_field(camp: Path, no_simulation, kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        steering.prepare(camp, steering.SteeringConfig(**kwargs))
    assert not (camp / "steering" / "experiments.parquet").exists()


def test_config_and_campaign_errors(tmp_path: Path, no_simulation):
    with pytest.raises(ValueError, match="alpha_min"):
        steering.SteeringConfig(alpha_min=1.0, alpha_max=0.5)
    with pytest.raises(ValueError, match="toward"):
        steering.SteeringConfig(toward="sideways")
    with pytest.raises(ValueError, match="^campaign_dir: .*not a campaign directory"):
        steering.prepare(tmp_path, steering.SteeringConfig())
    (tmp_path / "p").mkdir()
    physics_only = make_campaign(tmp_path / "p", closure=False)
    with pytest.raises(ValueError, match="^layers: .*no closure"):
        steering.prepare(physics_only, steering.SteeringConfig())


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


def test_a_second_steering_run_on_the_same_campaign_is_refused(camp: Path, no_simulation):
    from closedloop.lab.lock import CampaignLocked

    campaign = steering.open_campaign(camp)
    with steering.hold_steering(campaign):
        with pytest.raises(CampaignLocked, match="steering"):
            with steering.hold_steering(steering.open_campaign(camp)):
                pass
