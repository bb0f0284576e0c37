"""The math of two stop rules: the GP-expected maximum error and rounds without improvement
(the rules themselves: tests/lab/campaign/test_campaign_stop.py)."""
from __future__ import annotations

import torch

from closedloop.planners.design import sobol_design
from closedloop.planners.gp import fit_error_model
from closedloop.planners.stopping import expected_max_error, rounds_without_improvement
from tests.planners.synthetic_errors import SPACE, log_error


def test_expected_max_error_tracks_the_worst_region():
    x = sobol_design(SPACE, 16, seed=0)
    flat = fit_error_model(SPACE, x, torch.full((16,), -4.0, dtype=torch.float64) + 0.01 * x[:, 0])
    peaked = fit_error_model(SPACE, x, torch.full((16,), -4.0, dtype=torch.float64) + 3.0 * log_error(x).exp())
    e_flat = expected_max_error(flat, SPACE, seed=0, n_points=128)
    e_peak = expected_max_error(peaked, SPACE, seed=0, n_points=128)
    assert 0.015 < e_flat < 0.03  # exp(-4) = 0.018: flat and confident
    assert e_peak > 0.2  # exp(-1) near the peak dominates the maximum
    assert e_peak > 5 * e_flat


def test_rounds_without_improvement():
    assert rounds_without_improvement([1.0, 0.9, 0.95, 0.89], min_improvement=0.05) == 2
    assert rounds_without_improvement([]) == 0
