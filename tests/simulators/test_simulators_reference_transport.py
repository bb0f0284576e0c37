"""The reference solver's transport: TVD + SSP-RK2 budgets, moving and Gaussian sources, snapshots and the
eddy-viscosity diffusivity's flow model."""
from __future__ import annotations

import pytest
import torch

from closedloop.simulators import simulate
from closedloop.simulators.geometry import room_geometry, source_distribution
from sim_test_scenarios import MOVING
from sim_test_scenarios import room_with as room


def test_budget_closes_with_tvd_rk2_and_a_moving_gaussian_source():
    sc = room(source=MOVING, **{"time.horizon": 60.0})
    assert (sc.numerics.advection, sc.numerics.time_stepping) == ("tvd", "ssp_rk2")
    r = simulate(sc, device="cpu")
    emitted = r.mass_emitted
    assert torch.allclose(emitted, 2.0 * r.times, rtol=0, atol=1e-12)  # exactly rate × time on
    balance = (emitted - r.mass_in_domain - r.mass_exhausted).abs()
    assert balance.max() <= 1e-10 * emitted.max()
    assert r.plane.min() >= -1e-14


def test_moving_source_deposits_mass_along_its_path():
    """Nearly still air and weak diffusion: the deposited mass sits where the source passed.

    For a straight path A→B at constant speed, the centroid at time t is (A + P(t))/2."""
    sc = room(source={**MOVING, "shape": "box"}, eddy_diffusivity=1e-4,
              **{"inlets.0.speed": 1e-3, "time.horizon": 60.0, "time.output_interval": 10.0,
                 "time.snapshots": [30.0, 60.0]})
    r = simulate(sc, device="cpu")
    geo = room_geometry(sc)
    xs = [geo.grid.cell_centers(a) for a in range(3)]
    for t in (30.0, 60.0):
        c = r.snapshots[t]
        m = c.sum()
        centroid = [float((c.sum(dim=tuple(d for d in range(3) if d != a)) * xs[a]).sum() / m) for a in range(3)]
        a = sc.source.position_at(0.0)
        p = sc.source.position_at(t - 5.0)  # emission up to t; the mean of the path so far
        expected = [(a[i] + sc.source.position_at(t)[i]) / 2 for i in range(2)]
        assert abs(centroid[0] - expected[0]) < 0.2 and abs(centroid[1] - expected[1]) < 0.2, (t, centroid, expected, p)


def test_gaussian_source_is_exact_and_spread():
    sc = room(source={"x": 2.5, "y": 4.0, "z": 1.25, "rate": 1.0, "shape": "gaussian", "sigma": 0.6})
    geo = room_geometry(sc)
    s = source_distribution(sc, geo)
    assert abs(float(s.sum()) * geo.grid.cell_volume - 1.0) < 1e-13
    assert (s[~geo.fluid] == 0).all()
    occupied = int((s > 0).sum())
    box = source_distribution(room(), geo)
    assert occupied > 20 * int((box > 0).sum())  # a 3σ Gaussian covers many cells, a box one


def test_snapshots_match_plane_and_solids_stay_empty():
    sc = room(**{"time.horizon": 40.0, "time.snapshots": [20.0, 40.0]})
    r = simulate(sc, device="cpu")
    geo = room_geometry(sc)
    assert sorted(r.snapshots) == [20.0, 40.0]
    for t, c in r.snapshots.items():
        assert (c[~geo.fluid] == 0).all() and c.min() >= 0
    from closedloop.simulators.plane import plane_reduction

    red = plane_reduction(sc, geo)
    k = int(torch.nonzero(r.times == 40.0)[0])
    assert torch.allclose(red.average(r.snapshots[40.0]), r.plane[k], rtol=1e-12, atol=1e-14)


def test_tvd_keeps_the_plume_sharper_than_upwind():
    tvd = simulate(room(**{"time.horizon": 60.0}), device="cpu")
    up = simulate(room(**{"time.horizon": 60.0, "numerics.advection": "upwind"}), device="cpu")
    assert tvd.plane[-1].max() > 1.02 * up.plane[-1].max()
    assert tvd.extra["advection"] == "tvd" and up.extra["advection"] == "upwind"


def test_eddy_viscosity_diffusivity_needs_navier_stokes():
    with pytest.raises(ValueError, match="diffusivity.model"):
        room(**{"diffusivity.model": "eddy_viscosity"})
