"""The plane reduction and probes: probe cells, the band's layer weights and the plane mask."""
from __future__ import annotations

import torch

from closedloop.simulators.geometry import room_geometry
from closedloop.simulators.plane import plane_reduction, probe_indices
from sim_test_scenarios import room


def test_probe_cells_and_plane_mask():
    s = room()
    g = room_geometry(s)
    assert probe_indices(s, g) == {"desk": (15, 4, 2), "exhaust": (19, 9, 4)}
    red = plane_reduction(s, g)
    assert torch.allclose(red.layer_weights, torch.tensor([0, 0, 0.5, 0.5, 0, 0], dtype=torch.float64))
    assert red.mask.sum().item() == 20 * 12 - 4
    field = torch.arange(6, dtype=torch.float64).expand(20, 12, 6)  # c = layer index
    avg = red.average(field)
    assert torch.allclose(avg[red.mask], torch.full_like(avg[red.mask], 2.5))
    assert torch.all(avg[~red.mask] == 0)
