"""The staggered grid: cell and face geometry, and bad shapes, spacings and origins named."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics import Grid
from fv_test_fields import F64


def test_grid_validation_and_geometry():
    g = Grid(shape=(4, 5, 6), spacing=(0.5, 0.25, 2.0))
    assert g.cell_volume == pytest.approx(0.25) and g.face_area(2) == pytest.approx(0.125)
    assert g.size == pytest.approx((2.0, 1.25, 12.0))
    assert g.face_shape(1) == (4, 6, 6)
    assert torch.allclose(g.cell_centers(0), torch.tensor([0.25, 0.75, 1.25, 1.75], dtype=F64))
    assert torch.allclose(g.face_positions(0), torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0], dtype=F64))
    for kwargs, field in [(dict(shape=(4,), spacing=(1.0,)), "shape"),
                          (dict(shape=(4, 4), spacing=(1.0,)), "spacing"),
                          (dict(shape=(4, 0), spacing=(1.0, 1.0)), "shape"),
                          (dict(shape=(4, 4), spacing=(1.0, -1.0)), "spacing"),
                          (dict(shape=(4, 4), spacing=(1.0, float("inf"))), "spacing"),
                          (dict(shape=(4, 4), spacing=(1.0, 1.0), origin=(0.0,)), "origin")]:
        with pytest.raises(ValueError, match=field):
            Grid(**kwargs)
