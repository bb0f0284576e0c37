"""A run that cannot start says why in one line naming the field (what the UI shows as its state)."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.flows.campaign import campaign
from closedloop.lab.config import ConfigError, load_with_overrides
from tests.conftest import SMOKE

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_override_errors_are_one_config_error_naming_the_field():
    with pytest.raises(ConfigError) as err:
        load_with_overrides(SMOKE, **{"budget.rounds": 0, "budget.batch_size": 1, "planner.strategy": None})
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{SMOKE} with rounds=0, batch_size=1: invalid configuration; ")
    assert "budget.rounds: Input should be greater than or equal to 1" in text and "budget.batch_size" in text
    assert load_with_overrides(SMOKE, **{"budget.rounds": None}).budget.rounds == 2


@pytest.mark.parametrize("parameters, field", [
    ({"rounds": 0}, "budget.rounds: Input should be greater than or equal to 1"),
    ({"strategy": "genius"}, "planner.strategy: Input should be"),
    ({"batch_size": 1}, "budget.batch_size"),
])
def test_failed_run_state_is_one_line_naming_the_field(tmp_path: Path, parameters: dict, field: str):
    state = campaign(config_path=str(SMOKE), campaign_dir=str(tmp_path / "c"), return_state=True, **parameters)
    assert state.is_failed()
    assert "\n" not in state.message and field in state.message and "ConfigError" in state.message
    assert not (tmp_path / "c").exists()
