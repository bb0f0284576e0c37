"""Masks: a face is open when it joins two fluid cells; boundary faces and faces touching a solid are closed."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics import Grid, open_faces


def test_open_faces_join_two_fluid_cells():
    grid = Grid(shape=(3, 2), spacing=(1.0, 1.0))
    fluid = torch.ones(grid.shape, dtype=torch.bool)
    fluid[1, 0] = False
    x, y = open_faces(fluid, grid, 0), open_faces(fluid, grid, 1)
    assert x.shape == grid.face_shape(0) == (4, 2) and y.shape == grid.face_shape(1) == (3, 3)
    assert x.tolist() == [[False, False], [False, True], [False, True], [False, False]]
    assert y.tolist() == [[False, True, False], [False, False, False], [False, True, False]]
    assert x.dtype == torch.bool


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_an_all_fluid_box_is_open_inside_and_closed_at_its_walls(axis):
    grid = Grid(shape=(3, 4, 2), spacing=(0.5, 0.5, 0.5))
    faces = open_faces(torch.ones(grid.shape, dtype=torch.bool), grid, axis)
    assert not faces.select(axis, 0).any() and not faces.select(axis, grid.shape[axis]).any()
    assert faces.narrow(axis, 1, grid.shape[axis] - 1).all()


def test_a_mask_of_another_shape_is_refused():
    with pytest.raises(ValueError, match=r"fluid mask shape \(2, 2\) != grid shape \(3, 2\)"):
        open_faces(torch.ones((2, 2), dtype=torch.bool), Grid(shape=(3, 2), spacing=(1.0, 1.0)), 0)
