"""``[planner]``: the search settings are the planner library's, by name and with its defaults (one
declaration each); the strategy must be registered."""
from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from closedloop.lab.planner_config import SETTINGS_FIELDS, PlannerConfig
from closedloop.planners.strategies import PlannerSettings


def test_settings_are_the_tables_fields_by_name_and_the_librarys_defaults():
    library = PlannerSettings()
    config = PlannerConfig()
    # every shared field takes the library's default but candidates (scored by surrogate rollouts)
    differ = {name for name in SETTINGS_FIELDS if getattr(config, name) != getattr(library, name)}
    assert differ == {"candidates"} and config.candidates < library.candidates
    assert config.settings() == dataclasses.replace(library, candidates=config.candidates)
    tuned = PlannerConfig(beta=2.0, optimizer="pool", maxiter=7, failure_radius=0.3).settings()
    assert (tuned.beta, tuned.optimizer, tuned.maxiter, tuned.failure_radius) == (2.0, "pool", 7, 0.3)
    assert tuned.pool_size == library.pool_size  # not a [planner] field: the library's
    assert "strategy" not in SETTINGS_FIELDS and "ensemble_members" not in SETTINGS_FIELDS


@pytest.mark.parametrize("fields, needle", [
    ({"strategy": "bayes"}, r"Input should be one of .*'variance'.*got 'bayes'"),
    ({"acquisition": "ei"}, "acquisition"),
    ({"raw_samples": 4}, "raw_samples"),
    ({"failure_radius": 1.5}, "failure_radius"),
    ({"information_differences": "backward"}, "information_differences"),
])
def test_a_bad_planner_is_refused_naming_the_field(fields, needle):
    with pytest.raises(ValidationError, match=needle):
        PlannerConfig(**fields)
