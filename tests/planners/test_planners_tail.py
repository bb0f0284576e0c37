"""Tail weights and the ``tail`` strategy: with two equally unexplored holes in the design, one where the
GP predicts a high error and one where it predicts a low one, the batch goes to the high one, where plain
variance reduction goes to the larger, low one, and more of it than the expected-error weighting sends."""
from __future__ import annotations

import pytest
import torch

from closedloop.planners.design import sobol_design
from closedloop.planners.gp import fit_error_model
from closedloop.planners.strategies import Evidence, PlannerSettings, propose
from closedloop.planners.tail import tail_weights
from tests.planners.synthetic_errors import FAST, PEAK, SPACE, log_error, near

LOW = torch.tensor([0.25, 0.25], dtype=torch.float64)  # where log_error is low


@pytest.fixture(scope="module")
def two_holes() -> Evidence:
    """Sobol points with a hole at the error peak (r 0.18) and a larger one where the error is low (r 0.28)."""
    x = sobol_design(SPACE, 48, seed=0)
    x = x[~near(x, PEAK, 0.18) & ~near(x, LOW, 0.28)]
    return Evidence(observed=x, log_error=log_error(x), existing=x)


def test_the_weights_are_the_chance_of_lying_in_the_top_five_percent(two_holes):
    torch.manual_seed(0)
    gp = fit_error_model(SPACE, two_holes.observed, two_holes.log_error)
    z = sobol_design(SPACE, 64, seed=3)
    w = tail_weights(gp, z, seed=1)
    assert ((w >= 0) & (w <= 1)).all()
    assert float(w.sum()) == pytest.approx(4.0)  # each joint draw puts 4 of 64 points above its p95
    assert float(w[near(z, PEAK, 0.25)].sum()) > 3.0 and float(w[near(z, LOW, 0.3)].sum()) == 0.0
    assert torch.equal(w, tail_weights(gp, z, seed=1))  # seeded draws: the same weights again
    with pytest.raises(ValueError, match=r"quantile: must lie in \(0, 1\)"):
        tail_weights(gp, z, quantile=1.0)


def test_the_tail_strategy_goes_where_the_error_is_predicted_high(two_holes):
    tail = propose("tail", SPACE, 4, two_holes, seed=1, settings=FAST)
    plain = propose("variance", SPACE, 4, two_holes, seed=1, settings=FAST)
    ivr = propose("error", SPACE, 4, two_holes, seed=1,
                  settings=PlannerSettings(**{**FAST.__dict__, "acquisition": "error_ivr"}))
    assert near(tail, PEAK, 0.2).sum() >= 3 and near(tail, LOW, 0.3).sum() == 0
    # the same evidence, unweighted: the larger hole (low error) wins, so the weighting decides
    assert near(plain, LOW, 0.3).sum() >= 2 and near(plain, PEAK, 0.2).sum() <= 1
    # the expected-error weighting also leans to the peak, less: its weights are nowhere zero
    assert near(tail, PEAK, 0.2).sum() > near(ivr, PEAK, 0.2).sum()
