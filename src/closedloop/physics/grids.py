"""Uniform staggered (MAC) grids in 2D and 3D.

Scalars live at cell centres ``x_i = origin + (i + 1/2) h``; the normal component of a vector
field along axis ``a`` lives at the faces ``x_{i-1/2} = origin + i h``, ``i = 0..n_a``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Grid:
    """A box of ``shape`` cells of size ``spacing`` starting at ``origin`` (metres)."""

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.shape) not in (2, 3):
            raise ValueError(f"Grid.shape: expected 2 or 3 axes, got {self.shape}")
        if len(self.spacing) != len(self.shape):
            raise ValueError("Grid.spacing: needs one entry per axis of Grid.shape")
        if any(n < 1 for n in self.shape):
            raise ValueError(f"Grid.shape: every axis needs at least one cell, got {self.shape}")
        if any(not (h > 0 and math.isfinite(h)) for h in self.spacing):
            raise ValueError(f"Grid.spacing: must be positive and finite, got {self.spacing}")
        if self.origin is None:
            object.__setattr__(self, "origin", tuple(0.0 for _ in self.shape))
        elif len(self.origin) != len(self.shape):
            raise ValueError("Grid.origin: needs one entry per axis of Grid.shape")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def cell_volume(self) -> float:
        """Cell volume (3D) or area (2D)."""
        return math.prod(self.spacing)

    @property
    def size(self) -> tuple[float, ...]:
        """Physical extent along each axis."""
        return tuple(n * h for n, h in zip(self.shape, self.spacing))

    def face_area(self, axis: int) -> float:
        """Area (3D) or length (2D) of a face normal to ``axis``."""
        return self.cell_volume / self.spacing[axis]

    def face_shape(self, axis: int) -> tuple[int, ...]:
        shape = list(self.shape)
        shape[axis] += 1
        return tuple(shape)

    def cell_centers(self, axis: int, dtype: torch.dtype = torch.float64,
                     device: torch.device | str | None = None) -> torch.Tensor:
        """1D coordinates of the cell centres along ``axis``."""
        assert self.origin is not None
        i = torch.arange(self.shape[axis], dtype=dtype, device=device)
        return self.origin[axis] + (i + 0.5) * self.spacing[axis]

    def face_positions(self, axis: int, dtype: torch.dtype = torch.float64,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """1D coordinates of the faces normal to ``axis``."""
        assert self.origin is not None
        i = torch.arange(self.shape[axis] + 1, dtype=dtype, device=device)
        return self.origin[axis] + i * self.spacing[axis]

    def axis_dim(self, field: torch.Tensor, axis: int) -> int:
        """Tensor dimension of grid ``axis`` in a field with leading batch dimensions."""
        return field.ndim - self.ndim + axis
