"""Ensemble disagreement: the score peaks where the members disagree, and the greedy batch spreads out and
keeps clear of pending points."""
from __future__ import annotations

import pytest
import torch

from closedloop.planners.design import sobol_design
from closedloop.planners.ensemble import disagreement, greedy_batch
from closedloop.planners.strategies import propose
from tests.planners.synthetic_errors import FAST, PEAK, SPACE, near


def test_ensemble_scores_spread_and_picks_diverse_batch(evidence):
    cands = sobol_design(SPACE, 128, seed=4)
    # two members that agree except near PEAK
    base = torch.ones(128, 5)
    bump = torch.exp(-20 * ((cands - PEAK) ** 2).sum(1))[:, None]
    preds = torch.stack([base, base + 3 * bump])
    score = disagreement(preds)
    assert score.argmax() == near(cands, PEAK, 1.0).nonzero()[(cands[near(cands, PEAK, 1.0)] - PEAK).norm(dim=1).argmin()]
    x = propose("ensemble", SPACE, 3, evidence, seed=2, settings=FAST,
                ensemble_score=lambda c: disagreement(torch.stack([torch.ones(len(c), 5), torch.ones(len(c), 5)
                                                                   + 3 * torch.exp(-20 * ((c - PEAK) ** 2).sum(1))[:, None]])))
    assert near(x[:1], PEAK, 0.2).all()
    assert torch.pdist(x).min() > 0.05  # the penalty spreads the batch
    with pytest.raises(ValueError, match="K ≥ 2"):
        disagreement(torch.ones(1, 4, 3))


def test_pending_points_in_the_ensemble_batch_are_penalised():
    cands = sobol_design(SPACE, 256, seed=0)
    scores = torch.exp(-10 * ((cands - PEAK) ** 2).sum(1))
    first = greedy_batch(SPACE, cands, scores, 2)
    again = greedy_batch(SPACE, cands, scores, 2, taken=first)
    assert torch.cdist(again, first).min() > 0.1
