"""Strategies by name, mixed design spaces, pending points, failed regions and stopping rules."""
from __future__ import annotations

import pytest
import torch

from closedloop.planners.design import DesignSpace, random_design, sobol_design
from closedloop.planners.ensemble import disagreement, greedy_batch
from closedloop.planners.failures import clear_of_failures
from closedloop.planners.gp import fit_error_model
from closedloop.planners.stopping import expected_max_error, rounds_without_improvement, stop_reason
from closedloop.planners.strategies import STRATEGIES, Evidence, PlannerSettings, propose

SPACE = DesignSpace(names=("a", "b"), lower=(0.0, 0.0), upper=(1.0, 1.0))
PEAK = torch.tensor([0.8, 0.8], dtype=torch.float64)
FAST = PlannerSettings(num_restarts=2, raw_samples=64, mc_samples=32, maxiter=30, pool_size=256, gp_maxiter=40,
                       optimizer="pool",
                       integration_points=64, candidates=128)


def log_error(x: torch.Tensor) -> torch.Tensor:
    """A synthetic error landscape: large near PEAK, small elsewhere."""
    return -6.0 * ((x - PEAK) ** 2).sum(dim=1)


@pytest.fixture(scope="module")
def evidence() -> Evidence:
    x = sobol_design(SPACE, 12, seed=0)
    return Evidence(observed=x, log_error=log_error(x), existing=x)


def near(x: torch.Tensor, centre: torch.Tensor, r: float) -> torch.Tensor:
    return (x - centre).norm(dim=-1) < r


# ------------------------------------------------------------------ mixed design spaces
def test_integer_axes_are_whole_and_balanced():
    space = DesignSpace(names=("x", "k"), lower=(0.0, 0.0), upper=(1.0, 3.0), integer=(False, True))
    for x in (sobol_design(space, 64, seed=1), random_design(space, 400, seed=1)):
        assert space.contains(x).all()
        assert torch.equal(x[:, 1], x[:, 1].round())
        counts = x[:, 1].long().bincount(minlength=4)
        assert counts.min() >= 0.15 * len(x)  # end values get their share, not half of it
    assert sobol_design(space, 64, seed=1)[:, 1].long().bincount().tolist() == [16, 16, 16, 16]
    assert torch.equal(space.snap(torch.tensor([[1.7, 2.6], [-0.2, 7.0]], dtype=torch.float64)),
                       torch.tensor([[1.0, 3.0], [0.0, 3.0]], dtype=torch.float64))
    assert space.contains(torch.tensor([[0.5, 1.5]], dtype=torch.float64)).tolist() == [False]
    with pytest.raises(ValueError, match="'k'.*whole bounds"):
        DesignSpace(names=("x", "k"), lower=(0.0, 0.5), upper=(1.0, 3.0), integer=(False, True))


def test_model_based_proposals_on_integer_axes_are_whole(evidence):
    space = DesignSpace(names=("a", "b"), lower=(0.0, 0.0), upper=(1.0, 4.0), integer=(False, True))
    x = sobol_design(space, 12, seed=0)
    y = -((x[:, 0] - 0.8) ** 2) - 0.1 * (x[:, 1] - 3) ** 2
    out = propose("error", space, 3, Evidence(observed=x, log_error=y, existing=x), seed=0, settings=FAST)
    assert space.contains(out).all() and torch.equal(out[:, 1], out[:, 1].round())


# ------------------------------------------------------------------ strategies by name
@pytest.mark.parametrize("strategy", ["error", "variance", "sobol", "random"])
def test_every_strategy_gives_feasible_new_points(strategy, evidence):
    feasible = lambda z: z[:, 0] < 0.9  # noqa: E731
    lbfgs = PlannerSettings(**{**FAST.__dict__, "optimizer": "lbfgs"})  # gradient search, then repair
    x = propose(strategy, SPACE, 4, evidence, seed=3, settings=lbfgs, feasible=feasible)
    assert x.shape == (4, 2) and SPACE.contains(x).all() and feasible(x).all()
    d = torch.cdist(x, torch.cat([evidence.observed, x])) + torch.cat([torch.full((4, 12), 0.0), torch.eye(4) * 9], 1)
    assert d.min() >= FAST.min_distance


def test_error_strategy_aims_at_high_error_and_variance_spreads_out(evidence):
    err = propose("error", SPACE, 4, evidence, seed=1, settings=FAST)
    var = propose("variance", SPACE, 4, evidence, seed=1, settings=FAST)
    lognei = propose("error", SPACE, 4, evidence, seed=1,
                     settings=PlannerSettings(**{**FAST.__dict__, "acquisition": "qlognei", "optimizer": "pool"}))
    ivr = propose("error", SPACE, 4, evidence, seed=1,
                  settings=PlannerSettings(**{**FAST.__dict__, "acquisition": "error_ivr"}))
    assert near(err, PEAK, 0.35).sum() >= 2 and near(lognei, PEAK, 0.35).sum() >= 2
    # error-weighted variance reduction: nearer the peak than plain variance reduction
    assert (ivr - PEAK).norm(dim=1).mean() < (var - PEAK).norm(dim=1).mean()
    # integrated variance: blind to the error's size, it fills the largest gaps of the design
    gap = lambda x: torch.cdist(x, evidence.observed).min(dim=1).values  # noqa: E731
    assert gap(var).mean() > gap(sobol_design(SPACE, 256, seed=9)).mean()


def test_unknown_strategy_and_missing_ensemble_are_refused(evidence):
    with pytest.raises(ValueError, match="strategy: unknown 'bayes'"):
        propose("bayes", SPACE, 2, evidence, seed=0)
    with pytest.raises(ValueError, match="ensemble_score"):
        propose("ensemble", SPACE, 2, evidence, seed=0)
    with pytest.raises(ValueError, match="strategy 'information': needs an information function"):
        propose("information", SPACE, 2, evidence, seed=0)
    assert set(STRATEGIES) == {"error", "variance", "ensemble", "information", "sobol", "random"}


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


# ------------------------------------------------------------------ pending points
@pytest.mark.parametrize("strategy", ["error", "variance"])
def test_pending_points_are_avoided(strategy, evidence):
    """Proposals made while a batch simulates at the error peak go elsewhere."""
    free = propose(strategy, SPACE, 3, evidence, seed=5, settings=FAST)
    pending = free.clone()
    busy = propose(strategy, SPACE, 3, Evidence(observed=evidence.observed, log_error=evidence.log_error,
                                                existing=evidence.existing, pending=pending), seed=5, settings=FAST)
    # without pending points the same call would repeat itself; with them, every point moves away
    assert torch.cdist(busy, pending).min() > 0.05
    assert torch.equal(propose(strategy, SPACE, 3, evidence, seed=5, settings=FAST), free)


def test_pending_points_in_the_ensemble_batch_are_penalised():
    cands = sobol_design(SPACE, 256, seed=0)
    scores = torch.exp(-10 * ((cands - PEAK) ** 2).sum(1))
    first = greedy_batch(SPACE, cands, scores, 2)
    again = greedy_batch(SPACE, cands, scores, 2, taken=first)
    assert torch.cdist(again, first).min() > 0.1


def test_pending_points_change_the_acquisition_not_just_deduplication(evidence):
    """X_pending at the peak lowers qUCB there: the batch moves further than min_distance."""
    pending = PEAK[None].repeat(1, 1)
    with_pending = propose("error", SPACE, 2, Evidence(observed=evidence.observed, log_error=evidence.log_error,
                                                       existing=evidence.existing, pending=pending),
                           seed=7, settings=FAST)
    assert (with_pending - PEAK).norm(dim=1).min() > 0.05


# ------------------------------------------------------------------ failures
def test_failed_region_is_avoided_by_every_strategy():
    """A fake simulator fails where a > 0.6 and b > 0.6, exactly where the error is largest. The loop
    records failures (never in the GP) and after the first ones proposes nothing in that corner."""
    def fails(x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0] > 0.6) & (x[:, 1] > 0.6)

    for strategy in ("error", "sobol"):
        x = sobol_design(SPACE, 8, seed=1)
        x = x[~fails(x)]
        y = log_error(x)
        failed = torch.empty(0, 2, dtype=torch.float64)
        hits = []
        for r in range(4):
            new = propose(strategy, SPACE, 4, Evidence(observed=x, log_error=y, failed=failed,
                                                       existing=torch.cat([x, failed])),
                          seed=10 + r, settings=PlannerSettings(**{**FAST.__dict__, "failure_radius": 0.25}))
            bad = fails(new)
            hits.append(int(bad.sum()))
            failed = torch.cat([failed, new[bad]])
            x, y = torch.cat([x, new[~bad]]), torch.cat([y, log_error(new[~bad])])
        assert torch.isfinite(y).all() and len(y) == len(x)  # failures never enter the GP
        assert sum(hits[2:]) == 0, (strategy, hits)  # the corner is learnt and left alone


def test_clear_of_failures_radius():
    failed = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    rule = clear_of_failures(SPACE, failed, 0.1)
    pts = torch.tensor([[0.5, 0.55], [0.5, 0.65], [0.9, 0.9]], dtype=torch.float64)
    assert rule(pts).tolist() == [False, True, True]
    assert clear_of_failures(SPACE, None, 0.1)(pts).all()
    with pytest.raises(ValueError, match="radius"):
        clear_of_failures(SPACE, failed, -1.0)


# ------------------------------------------------------------------ stopping
def test_expected_max_error_tracks_the_worst_region():
    x = sobol_design(SPACE, 16, seed=0)
    flat = fit_error_model(SPACE, x, torch.full((16,), -4.0, dtype=torch.float64) + 0.01 * x[:, 0])
    peaked = fit_error_model(SPACE, x, torch.full((16,), -4.0, dtype=torch.float64) + 3.0 * log_error(x).exp())
    e_flat = expected_max_error(flat, SPACE, seed=0, n_points=128)
    e_peak = expected_max_error(peaked, SPACE, seed=0, n_points=128)
    assert 0.015 < e_flat < 0.03  # exp(-4) = 0.018: flat and confident
    assert e_peak > 0.2  # exp(-1) near the peak dominates the maximum
    assert e_peak > 5 * e_flat


def test_stop_reasons_in_order():
    common = dict(rounds_done=2, max_rounds=10)
    assert stop_reason(cases_used=40, max_cases=40, **common).startswith("simulation budget spent (40 of 40")
    assert stop_reason(cases_used=8, max_cases=40, expected_max=0.01, max_error_target=0.02,
                       **common).startswith("accuracy target reached")
    assert stop_reason(cases_used=8, max_cases=40, expected_max=0.05, max_error_target=0.02, **common) is None
    assert stop_reason(cases_used=8, max_cases=None, history=[0.5, 0.3, 0.31, 0.32], patience=2,
                       **common).startswith("no improvement for 2 rounds")
    assert stop_reason(cases_used=8, max_cases=None, history=[0.5, 0.3, 0.31, 0.29], patience=2, **common) is None
    assert stop_reason(cases_used=8, max_cases=None, rounds_done=10, max_rounds=10).startswith("round budget")
    assert rounds_without_improvement([1.0, 0.9, 0.95, 0.89], min_improvement=0.05) == 2
    assert rounds_without_improvement([]) == 0
