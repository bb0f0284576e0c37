"""Failed regions: a point is clear of failures beyond the radius (in the unit cube)."""
from __future__ import annotations

import pytest
import torch

from closedloop.planners.failures import clear_of_failures
from tests.planners.synthetic_errors import SPACE


def test_clear_of_failures_radius():
    failed = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    rule = clear_of_failures(SPACE, failed, 0.1)
    pts = torch.tensor([[0.5, 0.55], [0.5, 0.65], [0.9, 0.9]], dtype=torch.float64)
    assert rule(pts).tolist() == [False, True, True]
    assert clear_of_failures(SPACE, None, 0.1)(pts).all()
    with pytest.raises(ValueError, match="radius"):
        clear_of_failures(SPACE, failed, -1.0)
