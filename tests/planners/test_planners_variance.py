"""Greedy integrated variance reduction: the batch goes where the GP knows least, pending points and
weights move it, and what cannot be chosen is refused."""
from __future__ import annotations

import pytest
import torch

from closedloop.planners.design import sobol_design
from closedloop.planners.gp import fit_error_model
from closedloop.planners.variance import greedy_variance_batch
from tests.planners.synthetic_errors import SPACE

CORNER = torch.tensor([[0.05, 0.05], [0.2, 0.1], [0.1, 0.25], [0.3, 0.3], [0.25, 0.05], [0.05, 0.35]],
                      dtype=torch.float64)


@pytest.fixture(scope="module")
def corner_gp():
    """A GP fitted on six points in the lower-left corner: it knows least in the upper right."""
    torch.manual_seed(0)
    return fit_error_model(SPACE, CORNER, CORNER.sum(dim=1).sin())


def test_the_batch_goes_where_the_gp_knows_least(corner_gp):
    pool, z = sobol_design(SPACE, 64, seed=1), sobol_design(SPACE, 128, seed=2)
    batch = greedy_variance_batch(corner_gp, SPACE, 3, pool, z)
    assert batch.shape == (3, 2) and all(any(torch.equal(b, p) for p in pool) for b in batch)
    gap = lambda x: torch.cdist(x, CORNER).min(dim=1).values  # noqa: E731
    assert gap(batch).mean() > gap(pool).mean()
    assert torch.pdist(batch).min() > 0.1  # each pick lowers the variance near it: the next goes elsewhere


def test_pending_points_and_weights_move_the_batch(corner_gp):
    pool, z = sobol_design(SPACE, 64, seed=1), sobol_design(SPACE, 128, seed=2)
    (first,) = greedy_variance_batch(corner_gp, SPACE, 1, pool, z)
    (busy,) = greedy_variance_batch(corner_gp, SPACE, 1, pool, z, pending=first[None])
    assert (busy - first).norm() > 0.1
    left = (z[:, 0] < 0.5).to(torch.float64)  # only the left half's variance counts
    (weighted,) = greedy_variance_batch(corner_gp, SPACE, 1, pool, z, weights=left)
    assert weighted[0] < 0.6 < first.max()


def test_what_cannot_be_chosen_is_refused(corner_gp):
    pool, z = sobol_design(SPACE, 8, seed=1), sobol_design(SPACE, 16, seed=2)
    with pytest.raises(ValueError, match="q must be at least 1"):
        greedy_variance_batch(corner_gp, SPACE, 0, pool, z)
    with pytest.raises(ValueError, match="weights: need 16 non-negative values"):
        greedy_variance_batch(corner_gp, SPACE, 1, pool, z, weights=-torch.ones(16, dtype=torch.float64))
    with pytest.raises(ValueError, match="design space exhausted"):
        greedy_variance_batch(corner_gp, SPACE, 1, pool, z, taken=pool)
