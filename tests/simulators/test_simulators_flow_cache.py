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


def test_concurrent_cases_of_one_geometry_solve_the_flow_once(tmp_path, monkeypatch):
    """Four threads ask for one geometry's flow at once: one solves it, three read its file."""
    import threading
    import time as _time

    from closedloop.simulators import flow_cache
    from closedloop.simulators.geometry import room_geometry
    from tests.simulators.sim_test_scenarios import room

    monkeypatch.setenv("CLOSEDLOOP_FLOW_CACHE", str(tmp_path))
    solves, real = [], flow_cache.solve_flow

    def slow_solve(scenario, geometry):
        solves.append(1)
        _time.sleep(0.3)  # long enough for the others to arrive while it solves
        return real(scenario, geometry)

    monkeypatch.setattr(flow_cache, "solve_flow", slow_solve)
    scenario = room()
    fields = []
    threads = [threading.Thread(target=lambda: fields.append(flow_cache.steady_flow(scenario, room_geometry(scenario))))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(solves) == 1 and sorted(f.cached for f in fields) == [False, True, True, True]
    assert all(torch.equal(f.flow.velocity[0], fields[0].flow.velocity[0]) for f in fields)
