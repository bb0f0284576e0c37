"""From a scenario to the grid: solid cells, vent faces, the source distribution."""
from __future__ import annotations

import pytest
import torch

from closedloop.simulators.geometry import overlap_1d, room_geometry, source_distribution, vent_faces
from sim_test_scenarios import cluttered, room


def test_room_grid_and_solid_cells():
    g = room_geometry(room())
    assert g.grid.shape == (20, 12, 6) and g.grid.spacing == (0.5, 0.5, 0.5)
    solid = ~g.fluid
    # pillar: x cells 9-10, y cells 5-6, all 6 layers; desk: x 14-16, y 0-2, z 0-1
    assert solid.sum().item() == 2 * 2 * 6 + 3 * 3 * 2
    assert solid[9:11, 5:7, :].all() and solid[14:17, 0:3, 0:2].all()
    assert not solid[14:17, 0:3, 2:].any() and not solid[8, 5, 0] and not solid[17, 0, 0]


def test_vent_faces_follow_the_opening_and_skip_solids():
    s = room()
    g = room_geometry(s)
    inlet = vent_faces(s.inlets[0], g)
    assert inlet.shape == (21, 12, 6)
    assert {tuple(i) for i in inlet.nonzero().tolist()} == {(0, 2, 4), (0, 3, 4)}
    exhaust = vent_faces(s.exhausts[0], g)
    assert {tuple(i) for i in exhaust.nonzero().tolist()} == {(20, 8, 4), (20, 9, 4)}
    c = cluttered()
    gc = room_geometry(c)
    # the duct (x < 0.5, 1 < y < 1.5) blocks the y = 1.25 row of the x− inlet
    assert {tuple(i) for i in vent_faces(c.inlets[0], gc).nonzero().tolist()} == {(0, 3, 4)}
    ceiling = vent_faces(c.exhausts[1], gc)
    assert ceiling.shape == (20, 12, 7)
    assert {tuple(i) for i in ceiling.nonzero().tolist()} == {(11, 9, 6), (11, 10, 6), (12, 9, 6),
                                                             (12, 10, 6)}


def test_overlap_1d_lengths():
    g = room_geometry(room()).grid
    w = overlap_1d(1.2, 2.3, g, 2, torch.float64)
    assert torch.allclose(w, torch.tensor([0, 0, 0.3, 0.5, 0.3, 0], dtype=torch.float64), atol=1e-15)
    assert overlap_1d(-1.0, 0.2, g, 0, torch.float64).sum().item() == pytest.approx(0.2)


@pytest.mark.parametrize("position, size, cells", [
    ((2.5, 4.0, 1.25), None, ({4, 5}, {7, 8}, {2})),            # the room's source, one cell
    ((5.75, 3.0, 1.5), 1.0, ({11, 12}, {5, 6}, {2, 3})),        # straddles the pillar's x+ side
    ((0.2, 0.3, 2.9), 1.0, ({0, 1}, {0, 1}, {4, 5})),           # sticks out through a corner
    ((7.75, 0.75, 1.1), 0.6, ({14, 15, 16}, {0, 1, 2}, {2})),   # on the desk top (layer 1 solid)
])
def test_source_distribution_is_exact_and_avoids_solids(position, size, cells):
    src = {"x": position[0], "y": position[1], "z": position[2], "rate": 1.0}
    if size is not None:
        src["size"] = size
    s = room(source=src)
    g = room_geometry(s)
    dist = source_distribution(s, g)
    assert dist.shape == g.grid.shape and dist.min().item() >= 0
    assert (dist.sum() * g.grid.cell_volume).item() == pytest.approx(1.0, rel=1e-14)
    assert torch.all(dist[~g.fluid] == 0)
    # the emitting cells: those the cube overlaps, less the solid ones
    for a in range(3):
        idx = dist.sum(dim=tuple(d for d in range(3) if d != a)).nonzero().squeeze(1)
        assert set(idx.tolist()) == cells[a]


def test_uniform_cube_inside_fluid_is_uniform():
    s = room(source={"x": 2.5, "y": 4.0, "z": 1.5, "rate": 1.0, "size": 1.0})
    g = room_geometry(s)
    dist = source_distribution(s, g)
    nz = dist[dist > 0]
    assert nz.numel() == 8 and torch.allclose(nz, torch.full_like(nz, 1.0))  # 1 /(1 m³)


def test_an_inlet_cut_off_from_every_exhaust_is_refused_and_a_closed_off_source_warned():
    import warnings

    from closedloop.simulators import Scenario
    from closedloop.simulators.geometry import ClosedOff, check_connected
    from sim_test_scenarios import room_data

    data = room_data()
    check_connected(Scenario.model_validate(data), room_geometry(Scenario.model_validate(data)))  # the room is fine
    data["obstacles"][0] = {"name": "partition", "min": [4.5, 0.0, 0.0], "max": [5.5, 6.0, 3.0]}
    cut = Scenario.model_validate(data)
    with pytest.raises(ValueError, match=r"^inlets.0: the air it blows in cannot reach any exhaust"):
        check_connected(cut, room_geometry(cut))
    # a closet with no vent: the inlet side is open to the exhaust again, the source sits in the closet
    data = room_data()
    data["obstacles"] += [{"name": "closet-wall", "min": [2.0, 3.0, 0.0], "max": [2.4, 6.0, 3.0]},
                          {"name": "closet-front", "min": [0.0, 3.0, 0.0], "max": [2.4, 3.4, 3.0]}]
    data["source"] = {**data["source"], "x": 1.0, "y": 5.0}
    closet = Scenario.model_validate(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_connected(closet, room_geometry(closet))
    assert [str(w.message) for w in caught if w.category is ClosedOff] == [
        "source: it sits in a part of the room no exhaust reaches; what it emits never leaves"]
