"""A campaign opened for steering: its latest checksum-verified model, the layers a concept can live in,
and the campaigns that cannot be opened."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from closedloop.lab import steering
from closedloop.lab.store import CampaignStore, file_sha256
from tests.lab.steering_campaign import PARAMS, make_campaign


def test_the_latest_model_its_id_and_its_design(camp: Path):
    campaign = steering.open_campaign(camp)
    assert campaign.model_name == "round_000"
    assert campaign.checkpoint_id == file_sha256(campaign.store.model_path("round_000"))
    assert [p.name for p in campaign.design.parameters] == list(PARAMS[0])
    assert campaign.steering_dir == camp / "steering"
    moved = campaign.scenario_for({"source_x": 3.0, "source_y": 2.0, "inlet_speed": 0.9})
    assert (moved.source.x, moved.source.y, moved.inlets[0].speed) == (3.0, 2.0, 0.9)


def test_candidate_layers_leave_out_the_one_channel_head_unless_named(camp: Path):
    campaign = steering.open_campaign(camp)
    assert steering.candidate_layers(campaign.model) == ["closure.gates", "closure.candidate"]
    assert steering.check_config(campaign, steering.SteeringConfig(layers=["closure.head"])) == ["closure.head"]
    with pytest.raises(ValueError, match=r"^concept: 'wind' is not a design parameter"):
        steering.check_config(campaign, steering.SteeringConfig(concept="wind"))


def test_a_campaign_without_identity_or_trained_model_is_refused_by_name(tmp_path: Path):
    root = make_campaign(tmp_path)
    store = CampaignStore(root)
    state = json.loads(store.state_path.read_text())
    store.state_path.write_text(json.dumps({**state, "identity": None}))
    with pytest.raises(ValueError, match="^campaign_dir: .*records no scenario and design"):
        steering.open_campaign(root)
    store.state_path.write_text(json.dumps(state))
    store.model_index_path.write_text("{}")
    with pytest.raises(ValueError, match="^campaign_dir: .*no trained model yet"):
        steering.open_campaign(root)
