"""SteeringConfig: bad parameters and campaigns that cannot be steered are refused by name."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.lab import steering
from tests.lab.steering_campaign import make_campaign


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


def test_name_says_the_concept_its_regime_and_the_reduction():
    assert steering.SteeringConfig().name == "inlet_speed_high"
    assert steering.SteeringConfig(concept="source_x", toward="low", reduce="field").name == "source_x_low_field"
    with pytest.raises(ValueError, match="base_cases"):
        steering.SteeringConfig(base_cases=0)
