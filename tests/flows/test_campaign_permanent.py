"""Which errors are permanent (recorded at once) and which transient (retried); the campaign-level
behaviour is in test_campaign_states.py."""
from __future__ import annotations

import pytest

from closedloop.lab.campaign.simulation import is_permanent
from closedloop.simulators.budget import ScenarioTooLarge


@pytest.mark.parametrize("error, permanent", [
    (ScenarioTooLarge("room.cell_size: too many cells"), True), (ValueError("inlet 0 opens onto a solid"), True),
    (MemoryError(), True), (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB"), True),
    (RuntimeError("solver diverged"), False), (FloatingPointError("NaN"), False), (TimeoutError(), False),
])
def test_which_errors_are_permanent(error: BaseException, permanent: bool):
    assert is_permanent(error) is permanent
