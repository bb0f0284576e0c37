"""Greedy D-optimal batches: information gain, diminishing returns, known and pending cases."""
from __future__ import annotations

import math

import pytest
import torch

from closedloop.planners.design import DesignSpace
from closedloop.planners.information import default_ridge, greedy_information_batch, information_gain
from closedloop.planners.strategies import Evidence, PlannerSettings, propose

SPACE = DesignSpace(names=("a", "b"), lower=(0.0, 0.0), upper=(1.0, 1.0))


def rank_one(direction: list[float], size: float) -> torch.Tensor:
    v = torch.tensor(direction, dtype=torch.float64)
    v = v / v.norm()
    return size * torch.outer(v, v)


def test_gain_is_log_volume_and_diminishes():
    """gain = log det(A + F) − log det A: zero for no information, log(1 + s/λ) for a rank-one F of
    size s, and a second copy of the same information is worth less than the first."""
    none = torch.zeros(0, 2, 2, dtype=torch.float64)
    f = rank_one([1.0, 0.0], 3.0)
    g = information_gain(none, torch.stack([torch.zeros(2, 2, dtype=torch.float64), f]), ridge=1.0)
    assert g[0] == 0 and g[1] == pytest.approx(math.log(4.0), rel=1e-12)
    again = information_gain(f[None], f[None], ridge=1.0)[0]
    assert 0 < again < g[1]
    assert default_ridge(torch.stack([f, 3 * f])) == pytest.approx((3.0 + 9.0) / (2 * 2))


def test_greedy_batch_covers_what_the_first_pick_left_open():
    """Candidates 0 and 1 teach the same direction (1 the most), 2 a different one, less strongly. The
    best single pick is 1; the second is 2, not 0: after 1, direction e₁ is known."""
    cands = torch.tensor([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], dtype=torch.float64)
    info = torch.stack([rank_one([1, 0], 8.0), rank_one([1, 0], 10.0), rank_one([0, 1], 4.0)])
    none = torch.zeros(0, 2, 2, dtype=torch.float64)
    batch = greedy_information_batch(SPACE, cands, info, none, 2, ridge=1.0)
    assert torch.equal(batch, cands[[1, 2]])
    # when e₁ is already known from the cases run, the first pick is the other direction
    known = rank_one([1, 0], 100.0)[None]
    assert torch.equal(greedy_information_batch(SPACE, cands, info, known, 1, ridge=1.0), cands[[2]])
    # a point already run is never proposed again, and an exhausted pool says so
    taken = cands[1:2]
    assert torch.equal(greedy_information_batch(SPACE, cands, info, none, 1, ridge=1.0, taken=taken), cands[[0]])
    with pytest.raises(ValueError, match="exhausted"):
        greedy_information_batch(SPACE, cands, info, none, 4, ridge=1.0)
    with pytest.raises(ValueError, match="ridge"):
        greedy_information_batch(SPACE, cands, info, none, 1, ridge=0.0)
    with pytest.raises(ValueError, match="one information matrix each"):
        greedy_information_batch(SPACE, cands, info[:2], none, 1)


def test_information_strategy_counts_pending_cases_as_known():
    """Synthetic surrogate: a scenario with a < 0.5 informs direction e₁, the others e₂. With the runs
    all on the left, the batch goes right; with pending right-hand cases too, it is judged against
    them (the gains of the right fall), and every proposal is feasible and new."""
    def information(x: torch.Tensor) -> torch.Tensor:
        left = (x[:, 0] < 0.5).to(torch.float64)
        e1, e2 = rank_one([1, 0], 1.0), rank_one([0, 1], 1.0)
        return left[:, None, None] * e1 + (1 - left)[:, None, None] * e2

    observed = torch.tensor([[0.1, 0.2], [0.2, 0.8], [0.3, 0.5], [0.4, 0.1]], dtype=torch.float64)
    ev = Evidence(observed=observed, log_error=torch.zeros(4, dtype=torch.float64), existing=observed)
    settings = PlannerSettings(candidates=64)
    feasible = lambda x: x[:, 1] < 0.9  # noqa: E731
    batch = propose("information", SPACE, 2, ev, seed=0, settings=settings, information=information,
                    feasible=feasible)
    assert (batch[:, 0] >= 0.5).all() and feasible(batch).all()
    pending = torch.tensor([[0.6, 0.3], [0.7, 0.6], [0.8, 0.2], [0.9, 0.7], [0.55, 0.5]], dtype=torch.float64)
    ev_pending = Evidence(observed=observed, log_error=ev.log_error, existing=observed, pending=pending)
    with_pending = propose("information", SPACE, 2, ev_pending, seed=0, settings=settings, information=information,
                           feasible=feasible)
    assert (torch.cdist(with_pending, torch.cat([observed, pending])).min(dim=1).values > 0).all()
    # four known left-hand cases vs four + five pending right: the right is no longer the clear gain
    assert (with_pending[:, 0] < 0.5).any()
