"""Fidelity levels: the conservative restriction of a plane series and the prior cost."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from closedloop.simulators import load_scenario, simulate
from closedloop.simulators.fidelity import (band_weights, prior_cost, refinement_factor, restrict_plane,
                                            restricted_weights)

ROOM = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "room.toml"


@pytest.fixture(scope="module")
def fine_run():
    scenario = load_scenario(ROOM).with_parameters({"time.horizon": 30.0, "room.cell_size": 0.25})
    return scenario, simulate(scenario, device="cpu")


def test_restriction_preserves_the_band_content_of_a_fine_simulation(fine_run):
    """Σ w_l c_l h_l² = Σ W_s c_s h_s² at every output time, and W_s is the 0.5 m grid's own band height."""
    scenario, result = fine_run
    w = band_weights(scenario)
    coarse = restrict_plane(result.plane.to(torch.float64), w, 2)
    assert coarse.shape == (result.plane.shape[0], 20, 12)
    w_s = restricted_weights(w, 2)
    fine_content = (result.plane.to(torch.float64) * w).sum(dim=(1, 2)) * 0.25 ** 2
    coarse_content = (coarse * w_s).sum(dim=(1, 2)) * 0.5 ** 2
    assert fine_content[-1] > 0
    torch.testing.assert_close(coarse_content, fine_content, rtol=1e-13, atol=0.0)
    # the obstacles sit on the coarse grid's faces: the restricted weights are the 0.5 m grid's band height
    torch.testing.assert_close(w_s, band_weights(scenario.with_parameters({"room.cell_size": 0.5})))


def test_restriction_is_the_weighted_block_mean():
    """Against an explicit loop, with blocks partly and wholly solid (weight 0)."""
    g = torch.Generator().manual_seed(3)
    plane = torch.rand(2, 6, 4, generator=g, dtype=torch.float64)
    w = torch.rand(6, 4, generator=g, dtype=torch.float64)
    w[0:2, 0:2] = 0.0  # a solid block
    w[2, 2] = 0.0  # a partly solid block
    out = restrict_plane(plane, w, 2)
    for t in range(2):
        for i in range(3):
            for j in range(2):
                ww = w[2 * i: 2 * i + 2, 2 * j: 2 * j + 2]
                cc = plane[t, 2 * i: 2 * i + 2, 2 * j: 2 * j + 2]
                expect = (ww * cc).sum() / ww.sum() if ww.sum() > 0 else torch.tensor(0.0, dtype=torch.float64)
                assert float(out[t, i, j]) == pytest.approx(float(expect), rel=1e-14, abs=0)
    assert restrict_plane(plane, w, 1) is plane


def test_refinement_factor_refuses_a_cell_size_that_does_not_refine():
    assert refinement_factor(0.5, 0.25) == 2 and refinement_factor(0.5, 0.5) == 1
    for fine in (0.3, 1.0):
        with pytest.raises(ValueError, match="does not refine"):
            refinement_factor(0.5, fine)
    with pytest.raises(ValueError, match="blocks"):
        restrict_plane(torch.zeros(5, 4), torch.ones(5, 4), 2)


def test_prior_cost_grows_with_cells_steps_and_stages():
    base = load_scenario(ROOM)
    coarse = base.with_parameters({"numerics.advection": "upwind", "numerics.time_stepping": "euler"})
    fine = base.with_parameters({"room.cell_size": 0.25})
    assert prior_cost(fine) > 8 * prior_cost(coarse)
    euler = prior_cost(base.with_parameters({"numerics.time_stepping": "euler"}))
    heun = prior_cost(base.with_parameters({"numerics.stages": 2}))
    assert heun == pytest.approx(2 * euler)  # the same step (C = 1), twice the stages
    # SSPRK(s,2): a step s − 1 times longer for s stages; cells × ⌈steps/(s − 1)⌉ × s
    for s in (3, 4, 10):
        assert prior_cost(base.with_parameters({"numerics.stages": s})) == pytest.approx(s / (s - 1) * euler, rel=0.02)
    faster = base.with_parameters({"inlets.0.speed": 1.5})
    assert prior_cost(faster) > prior_cost(base)
