"""The steady-flow cache: keyed by what the flow depends on, and a damaged entry is solved again."""
from __future__ import annotations

from pathlib import Path

import torch

from closedloop.simulators.flow_cache import steady_flow
from closedloop.simulators.geometry import room_geometry
from sim_test_scenarios import room_with as room


def test_flow_cache_hits_and_survives_a_damaged_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CLOSEDLOOP_FLOW_CACHE", str(tmp_path))
    sc = room()
    geo = room_geometry(sc)
    first = steady_flow(sc, geo)
    second = steady_flow(sc.with_parameters({"source.x": 7.0}), geo)  # the source does not change the flow
    assert not first.cached and second.cached and first.key == second.key
    for a in range(3):
        assert torch.equal(first.flow.velocity[a], second.flow.velocity[a])
    assert steady_flow(sc.with_parameters({"inlets.0.speed": 0.9}), geo).key != first.key
    (tmp_path / f"{first.key}.pt").write_bytes(b"damaged")
    again = steady_flow(sc, geo)
    assert not again.cached and torch.equal(again.flow.velocity[0], first.flow.velocity[0])
