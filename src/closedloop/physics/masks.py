"""Masks: which cells hold fluid and which faces connect two fluid cells."""
from __future__ import annotations

import torch

from closedloop.physics.grids import Grid


def open_faces(fluid: torch.Tensor, grid: Grid, axis: int) -> torch.Tensor:
    """Faces normal to ``axis`` that join two fluid cells (boundary faces are closed).

    ``fluid`` is a bool cell field of shape ``grid.shape``; the result has ``grid.face_shape(axis)``.
    """
    if tuple(fluid.shape) != grid.shape:
        raise ValueError(f"fluid mask shape {tuple(fluid.shape)} != grid shape {grid.shape}")
    inner = fluid.narrow(axis, 0, grid.shape[axis] - 1) & fluid.narrow(axis, 1, grid.shape[axis] - 1)
    edge = torch.zeros_like(fluid.narrow(axis, 0, 1))
    return torch.cat([edge, inner, edge], dim=axis)
