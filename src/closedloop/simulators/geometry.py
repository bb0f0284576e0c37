"""From a scenario to grids and masks: fluid cells, vent faces, the source distribution."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from closedloop.physics import Grid
from closedloop.simulators.scenario import Scenario, Vent


@dataclass(frozen=True)
class RoomGeometry:
    grid: Grid
    fluid: torch.Tensor  # bool, grid.shape


def overlap_1d(lo: float, hi: float, grid: Grid, axis: int, dtype: torch.dtype) -> torch.Tensor:
    """Length of [lo, hi] ∩ each cell along ``axis``."""
    faces = grid.face_positions(axis, dtype=dtype)
    left, right = faces[:-1], faces[1:]
    return (torch.minimum(right, torch.tensor(hi, dtype=dtype))
            - torch.maximum(left, torch.tensor(lo, dtype=dtype))).clamp(min=0)


def room_geometry(scenario: Scenario) -> RoomGeometry:
    """The room grid and its fluid mask; a cell is solid when its centre lies in an obstacle."""
    room = scenario.room
    grid = Grid(shape=room.shape, spacing=room.spacing)
    fluid = torch.ones(grid.shape, dtype=torch.bool)
    centers = [grid.cell_centers(a) for a in range(3)]
    for ob in scenario.obstacles:
        inside = [(c >= lo) & (c <= hi) for c, lo, hi in zip(centers, ob.min, ob.max)]
        solid = inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
        fluid &= ~solid
    if not fluid.any():
        raise ValueError("obstacles: they fill the whole room; no fluid cell is left")
    return RoomGeometry(grid=grid, fluid=fluid)


def vent_faces(vent: Vent, geometry: RoomGeometry) -> torch.Tensor:
    """Bool mask over the boundary faces of ``vent.face`` (a 2D mask on that face's cells).

    A face belongs to the vent when its centre lies in the opening [lo, hi) and the cell behind
    it is fluid. Returned with the face-field shape of the normal axis (all other faces False).
    """
    grid, fluid = geometry.grid, geometry.fluid
    axis = vent.normal_axis
    side = 0 if vent.face[1] == "-" else grid.shape[axis]
    cell = 0 if side == 0 else grid.shape[axis] - 1
    t0, t1 = vent.tangent_axes
    inside = []
    for t, c, s in zip((t0, t1), vent.center, vent.size):
        centers = grid.cell_centers(t)
        # half-open [lo, hi): an edge falling exactly on a cell centre opens that cell on one side only
        inside.append((centers >= c - s / 2 - 1e-9) & (centers < c + s / 2 - 1e-9))
    patch = inside[0][:, None] & inside[1][None, :]
    patch &= fluid.select(axis, cell)
    mask = torch.zeros(grid.face_shape(axis), dtype=torch.bool)
    mask.select(axis, side).copy_(patch)
    return mask


def gaussian_cell_integrals(mu: float, sigma: float, grid: Grid, axis: int,
                            dtype: torch.dtype) -> torch.Tensor:
    """∫ N(x; μ, σ²) dx over each cell along ``axis``, truncated at |x − μ| ≤ 3σ (exact erf)."""
    faces = grid.face_positions(axis, dtype=dtype)
    lo = torch.clamp(faces[:-1], min=mu - 3 * sigma, max=mu + 3 * sigma)
    hi = torch.clamp(faces[1:], min=mu - 3 * sigma, max=mu + 3 * sigma)
    z = lambda x: torch.erf((x - mu) / (sigma * 2 ** 0.5))  # noqa: E731
    return 0.5 * (z(hi) - z(lo))


def source_weights(scenario: Scenario, geometry: RoomGeometry, position: tuple[float, float, float],
                   dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    """Source rate density s (1/m³) for a unit emission rate at ``position``: Σ s·V = 1 exactly.

    Box: the source box's overlap with each cell; Gaussian: the cell integrals of a truncated
    Gaussian. Restricted to fluid cells and renormalised, so no mass is emitted into solids and
    none is lost to truncation.
    """
    grid = geometry.grid
    src = scenario.source
    if src.shape == "gaussian":
        assert src.sigma is not None
        w = [gaussian_cell_integrals(p, src.sigma, grid, a, dtype) for a, p in enumerate(position)]
    else:
        half = [(src.size if src.size is not None else h) / 2 for h in grid.spacing]
        w = [overlap_1d(p - hw, p + hw, grid, a, dtype) for a, (p, hw) in enumerate(zip(position, half))]
    w = [x.to(device) for x in w]
    weights = w[0][:, None, None] * w[1][None, :, None] * w[2][None, None, :]
    weights = weights * geometry.fluid.to(device=device, dtype=dtype)
    total = weights.sum()
    if total <= 0:
        raise ValueError(f"source: no fluid cell overlaps the source at {tuple(position)}")
    return weights / (total * grid.cell_volume)


def source_distribution(scenario: Scenario, geometry: RoomGeometry, dtype: torch.dtype = torch.float64,
                        t: float | None = None) -> torch.Tensor:
    """Source density for a unit rate at time ``t`` (the static or starting position if None)."""
    src = scenario.source
    pos = src.position if t is None else src.position_at(t)
    return source_weights(scenario, geometry, pos, dtype)


class ClosedOff(UserWarning):
    """The source sits in a part of the room no exhaust reaches: what it emits never leaves."""


def behind(vent: Vent, geometry: RoomGeometry) -> torch.Tensor:
    """Bool mask of the fluid cells just inside ``vent``'s open faces (``grid.shape``)."""
    faces = vent_faces(vent, geometry)
    axis = vent.normal_axis
    side = 0 if vent.face[1] == "-" else geometry.grid.shape[axis]
    cells = torch.zeros(geometry.grid.shape, dtype=torch.bool)
    cells.select(axis, 0 if side == 0 else geometry.grid.shape[axis] - 1).copy_(faces.select(axis, side))
    return cells


def check_connected(scenario: Scenario, geometry: RoomGeometry) -> None:
    """Every inlet's air must reach an exhaust through fluid cells (face connectivity, as in the FV
    stencil): else ValueError naming the inlet. A source in a part of the room that no exhaust
    reaches is allowed (a closed room is a valid experiment) but warned of (:class:`ClosedOff`)."""
    from scipy import ndimage

    labels = torch.from_numpy(ndimage.label(geometry.fluid.numpy())[0])
    exhausted = set()
    for vent in scenario.exhausts:
        exhausted |= set(labels[behind(vent, geometry)].tolist())
    for i, vent in enumerate(scenario.inlets):
        regions = set(labels[behind(vent, geometry)].tolist())
        if regions and not regions & exhausted:
            raise ValueError(f"inlets.{i}: the air it blows in cannot reach any exhaust: obstacles close off "
                             "its part of the room")
    src = scenario.source
    for t, *pos in src.path_samples(0.5 * min(geometry.grid.spacing)):
        idx = tuple(min(int(p / h), n - 1) for p, h, n in zip(pos, geometry.grid.spacing, geometry.grid.shape))
        if geometry.fluid[idx] and int(labels[idx]) not in exhausted:
            at = f" (at t = {t:g} s)" if src.is_moving else ""
            warnings.warn(f"source: it sits in a part of the room no exhaust reaches{at}; what it emits "
                          "never leaves", ClosedOff, stacklevel=2)
            return
