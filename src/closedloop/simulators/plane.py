"""Reduction of 3D fields to the analysed horizontal band (the "plane") and to probes.

c̄(x, y) = Σ_z w_z χ c / Σ_z w_z χ, with w_z the overlap of layer z with [z_min, z_max] and
χ the fluid mask: the volume mean over the fluid part of the band in each column.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from closedloop.simulators.geometry import RoomGeometry, overlap_1d
from closedloop.simulators.scenario import Scenario


@dataclass(frozen=True)
class PlaneReduction:
    layer_weights: torch.Tensor  # (nz,) band overlap per layer (m)
    column_weights: torch.Tensor  # (nx, ny, nz) w_z χ
    denominator: torch.Tensor  # (nx, ny) Σ_z w_z χ
    mask: torch.Tensor  # (nx, ny) bool, columns with fluid in the band

    def average(self, field: torch.Tensor) -> torch.Tensor:
        """Band mean of a cell field (..., nx, ny, nz) → (..., nx, ny); zero in solid columns."""
        num = (field * self.column_weights).sum(-1)
        return torch.where(self.mask, num / self.denominator.clamp_min(1e-300), torch.zeros_like(num))

    def average_faces(self, face_field: torch.Tensor) -> torch.Tensor:
        """Band mean of a horizontal face field (..., nx+1, ny, nz) or (..., nx, ny+1, nz).

        Weighted by layer overlap only: the band-averaged flux per unit band height.
        """
        w = self.layer_weights
        return (face_field * w).sum(-1) / w.sum()


def plane_reduction(scenario: Scenario, geometry: RoomGeometry,
                    dtype: torch.dtype = torch.float64) -> PlaneReduction:
    return band_reduction(geometry, scenario.plane.z_min, scenario.plane.z_max, dtype)


def band_reduction(geometry: RoomGeometry, z_min: float, z_max: float,
                   dtype: torch.dtype = torch.float64) -> PlaneReduction:
    """The reduction to any horizontal band [z_min, z_max] (the plane's, or a layer of the room)."""
    w = overlap_1d(z_min, z_max, geometry.grid, 2, dtype)
    cw = geometry.fluid.to(dtype) * w
    den = cw.sum(-1)
    return PlaneReduction(layer_weights=w, column_weights=cw, denominator=den, mask=den > 0)


def probe_indices(scenario: Scenario, geometry: RoomGeometry) -> dict[str, tuple[int, int, int]]:
    """The cell holding each probe; a probe inside a solid is an error naming it."""
    grid = geometry.grid
    out = {}
    for i, probe in enumerate(scenario.probes):
        idx = tuple(min(int(p // h), n - 1) for p, h, n in zip(probe.position, grid.spacing, grid.shape))
        if not geometry.fluid[idx]:
            raise ValueError(f"probes.{i} ({probe.name}): position {probe.position} is inside a solid")
        out[probe.name] = idx  # type: ignore[assignment]
    return out
