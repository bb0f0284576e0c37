"""Fixtures for the planner tests: evidence of twelve Sobol points on the synthetic error landscape."""
from __future__ import annotations

import pytest

from closedloop.planners.design import sobol_design
from closedloop.planners.strategies import Evidence
from tests.planners.synthetic_errors import SPACE, log_error


@pytest.fixture(scope="module")
def evidence() -> Evidence:
    x = sobol_design(SPACE, 12, seed=0)
    return Evidence(observed=x, log_error=log_error(x), existing=x)
