"""The error GP over (point, fidelity) and the cost-aware batch that picks point and level."""
from __future__ import annotations

import time

import pytest
import torch

from closedloop.planners.design import DesignSpace, random_design, sobol_design
from closedloop.planners.gp import fit_error_model
from closedloop.planners.multifidelity import at_top, cost_aware_batch, fit_multifidelity_error_model
from closedloop.planners.strategies import Evidence, PlannerSettings, make_strategy

SPACE = DesignSpace(names=("a", "b", "c", "d"), lower=(0.0, 0.0, -1.0, 10.0), upper=(1.0, 2.0, 1.0, 20.0))


@pytest.fixture
def one_thread():
    """One intra-op thread: on 2 shared cores two threads thrash (a 200-point fit took 42 s, not 2 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def log_error(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """A top-level error map and a lower level that is the same map, shifted and slightly distorted."""
    u = SPACE.to_unit(x)
    top = -2.0 + torch.sin(3 * u[:, 0]) + 0.5 * u[:, 1] ** 2
    return top + (1 - s) * (0.6 + 0.1 * u[:, 2])


def data(n_low: int, n_top: int, seed: int = 0):
    x = random_design(SPACE, n_low + n_top, seed=seed)
    s = torch.cat([torch.zeros(n_low), torch.ones(n_top)]).to(torch.float64)
    return x, s, log_error(x, s)


def test_top_level_error_is_inferred_from_many_low_and_few_top_cases(one_thread):
    x, s, y = data(40, 5)
    gp = fit_multifidelity_error_model(SPACE, x, s, y)
    z = random_design(SPACE, 64, seed=9)
    truth = log_error(z, torch.ones(64, dtype=torch.float64))
    single_gp = fit_error_model(SPACE, x[s == 1], y[s == 1])
    with torch.no_grad():
        mf = gp.posterior(at_top(z)).mean.squeeze(-1)
        single = single_gp.posterior(z).mean.squeeze(-1)
    mf_rmse, single_rmse = (mf - truth).pow(2).mean().sqrt(), (single - truth).pow(2).mean().sqrt()
    assert mf_rmse < 0.5 * single_rmse, (float(mf_rmse), float(single_rmse))
    assert mf_rmse < 0.15


def test_bad_inputs_are_refused_by_name(one_thread):
    x, s, y = data(4, 2)
    with pytest.raises(ValueError, match="fidelity: every level must lie in"):
        fit_multifidelity_error_model(SPACE, x, s * 2, y)
    with pytest.raises(ValueError, match="equal lengths"):
        fit_multifidelity_error_model(SPACE, x, s[:-1], y)
    gp = fit_multifidelity_error_model(SPACE, x, s, y)
    with pytest.raises(ValueError, match="costs: need 8 x 2"):
        cost_aware_batch(gp, SPACE, 2, sobol_design(SPACE, 8, seed=1), (0.0, 1.0), torch.ones(8, 3), seed=0)


@pytest.mark.parametrize(("low_cost", "expect_low"), [(0.01, True), (1.0, False)])
def test_the_level_follows_the_cost(low_cost, expect_low, one_thread):
    """A cheap, well-correlated low level wins; at equal cost observing the top level directly does."""
    x, s, y = data(20, 6)
    gp = fit_multifidelity_error_model(SPACE, x, s, y)
    pool = sobol_design(SPACE, 128, seed=3)
    costs = torch.tensor([low_cost, 1.0], dtype=torch.float64).expand(128, 2)
    out = cost_aware_batch(gp, SPACE, 4, pool, (0.0, 1.0), costs, seed=0,
                           taken=torch.cat([x, s[:, None]], dim=1))
    assert out.shape == (4, SPACE.dim + 1)
    assert bool(SPACE.contains(out[:, :-1]).all()) and set(out[:, -1].tolist()) <= {0.0, 1.0}
    assert bool((out[0, -1] == 0.0) == expect_low)
    if expect_low:
        assert int((out[:, -1] == 0.0).sum()) >= 3


def test_strategy_proposes_points_and_levels_feasible_clear_and_fast(one_thread):
    """q = 4 from 200 observed points (100 per level) in under 5 s; infeasible points and the
    neighbourhood of a failed case never proposed."""
    x, s, y = data(100, 100, seed=2)
    feasible = lambda z: z[:, 0] > 0.3  # noqa: E731
    ev = Evidence(observed=x, log_error=y, existing=x, observed_fidelity=s, existing_fidelity=s,
                  pending=x[:2] + 0.01, pending_fidelity=torch.ones(2, dtype=torch.float64), levels=(0.0, 1.0),
                  level_cost=lambda z: torch.tensor([0.1, 2.0], dtype=torch.float64).expand(len(z), 2),
                  feasible=feasible, failed=torch.tensor([[0.8, 1.0, 0.0, 15.0]], dtype=torch.float64))
    strategy = make_strategy("multifidelity", PlannerSettings(candidates=256, failure_radius=0.3), seed=4)
    assert strategy.chooses_fidelity
    t0 = time.perf_counter()
    out = strategy.propose(SPACE, 4, ev)
    assert time.perf_counter() - t0 < 5.0
    assert out.shape == (4, 5) and bool(feasible(out[:, :4]).all()) and bool(SPACE.contains(out[:, :4]).all())
    assert float(torch.cdist(SPACE.to_unit(out[:, :4]), SPACE.to_unit(ev.failed)).min()) >= 0.3  # clear of the failure
    with pytest.raises(ValueError, match="needs the observed levels"):
        strategy.propose(SPACE, 4, Evidence(observed=x, log_error=y))
