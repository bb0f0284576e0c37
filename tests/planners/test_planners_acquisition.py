"""qUCB batch proposals with feasibility repair, in the campaign's design box and a steering experiment's."""
from __future__ import annotations

import pytest
import torch

from closedloop.planners import DesignSpace, fit_error_model, propose_batch, sobol_design

SPACE = DesignSpace(names=("a", "b"), lower=(0.0, 0.0), upper=(1.0, 1.0))
PEAK = torch.tensor([0.8, 0.8], dtype=torch.float64)
SMALL = dict(num_restarts=2, raw_samples=64, mc_samples=32)


def infeasible_corner(x: torch.Tensor) -> torch.Tensor:
    """Feasible unless both coordinates exceed 0.6 (the corner that holds the peak)."""
    return ~((x[:, 0] > 0.6) & (x[:, 1] > 0.6))


@pytest.fixture(scope="module")
def peaked_gp():
    torch.manual_seed(0)
    x = sobol_design(SPACE, 12, seed=0)
    y = -5.0 * ((x - PEAK) ** 2).sum(dim=1)
    return fit_error_model(SPACE, x, y)


# ------------------------------------------------------------------------- proposals
@pytest.fixture(scope="module")
def proposals(peaked_gp):
    """One set of proposal runs shared by the tests below (each run takes about a second)."""
    raw = propose_batch(peaked_gp, SPACE, 3, seed=1, **SMALL)
    feas = propose_batch(peaked_gp, SPACE, 3, seed=1, feasible=infeasible_corner, **SMALL)
    torch.manual_seed(123)  # the global RNG state must not matter
    again = propose_batch(peaked_gp, SPACE, 3, seed=1, feasible=infeasible_corner, **SMALL)
    second = propose_batch(peaked_gp, SPACE, 3, seed=1, feasible=infeasible_corner,
                           existing=feas, **SMALL)
    return {"raw": raw, "feasible": feas, "again": again, "second": second}


def test_unconstrained_optimum_lies_in_the_infeasible_corner(proposals):
    """Premise of the repair test: without a rule, qUCB goes for the infeasible corner."""
    x = proposals["raw"]
    assert x.shape == (3, 2)
    assert SPACE.contains(x).all()
    assert not infeasible_corner(x).all()


def test_proposals_feasible_distinct_inside_bounds(proposals):
    raw, x = proposals["raw"], proposals["feasible"]
    assert x.shape == (3, 2) and x.dtype == torch.float64
    assert SPACE.contains(x).all()
    assert infeasible_corner(x).all()
    d = torch.cdist(SPACE.to_unit(x), SPACE.to_unit(x)) + torch.eye(3) * 10
    assert d.min() >= 1e-3
    # repair replaced exactly the infeasible raw proposals; feasible ones were kept
    bad = ~infeasible_corner(raw)
    assert torch.equal(x[~bad], raw[~bad])
    assert not torch.equal(x[bad], raw[bad])
    # the repaired points still aim at the peak: closer to it than a typical feasible point
    pool = sobol_design(SPACE, 256, seed=5)
    pool = pool[infeasible_corner(pool)]
    assert ((x[bad] - PEAK).norm(dim=1) < (pool - PEAK).norm(dim=1).median()).all()


def test_proposals_avoid_existing_points(proposals):
    first, second = proposals["feasible"], proposals["second"]
    assert infeasible_corner(second).all() and SPACE.contains(second).all()
    dist = torch.cdist(SPACE.to_unit(second), SPACE.to_unit(first))
    assert dist.min() >= 1e-3
    inner = torch.cdist(SPACE.to_unit(second), SPACE.to_unit(second)) + torch.eye(3) * 10
    assert inner.min() >= 1e-3


def test_proposals_deterministic_for_fixed_seed(proposals):
    assert torch.equal(proposals["feasible"], proposals["again"])


def test_propose_batch_rejects_bad_q_and_empty_feasible_set(peaked_gp):
    with pytest.raises(ValueError, match="q must be at least 1"):
        propose_batch(peaked_gp, SPACE, 0, seed=0, **SMALL)
    with pytest.raises(ValueError, match="no feasible point"):
        propose_batch(peaked_gp, SPACE, 1, seed=0, feasible=lambda z: torch.zeros(
            z.shape[0], dtype=torch.bool), **SMALL)


def test_steering_experiment_proposals_stay_in_bounds():
    space = DesignSpace(("alpha", "first_step", "layer_index"), (-2.0, 0.0, 0.0), (2.0, 10.0, 2.0))
    x = sobol_design(space, 6, seed=0)
    y = -(x[:, 0] - 0.7) ** 2  # agreement peaks at α = 0.7
    gp = fit_error_model(space, x, y)
    prop = propose_batch(gp, space, 3, seed=0, existing=x)
    assert bool(space.contains(prop).all()) and prop.shape == (3, 3)
