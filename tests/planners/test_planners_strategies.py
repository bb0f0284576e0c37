"""Strategies by name: the registry, feasible new points, where each strategy aims, pending points and
failed regions."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from closedloop.planners.design import DesignSpace, sobol_design
from closedloop.planners.strategies import (REGISTRY, STRATEGIES, Evidence, Needs, PlannerSettings, Strategy, make_strategy,
                                           propose)
from tests.planners.synthetic_errors import FAST, PEAK, SPACE, log_error, near


def test_model_based_proposals_on_integer_axes_are_whole(evidence):
    space = DesignSpace(names=("a", "b"), lower=(0.0, 0.0), upper=(1.0, 4.0), integer=(False, True))
    x = sobol_design(space, 12, seed=0)
    y = -((x[:, 0] - 0.8) ** 2) - 0.1 * (x[:, 1] - 3) ** 2
    out = propose("error", space, 3, Evidence(observed=x, log_error=y, existing=x), seed=0, settings=FAST)
    assert space.contains(out).all() and torch.equal(out[:, 1], out[:, 1].round())


# ------------------------------------------------------------------ strategies by name
@pytest.mark.parametrize("strategy", ["error", "variance", "tail", "sobol", "random"])
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
    assert set(STRATEGIES) == {"error", "variance", "tail", "ensemble", "information", "multifidelity", "sobol",
                               "random"}


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


# ------------------------------------------------------------------ the registry
def test_the_registry_holds_the_strategies_a_campaign_config_allows():
    import pydantic

    from closedloop.lab.config import PlannerConfig

    assert set(STRATEGIES) <= set(REGISTRY) and all(cls.name == name for name, cls in REGISTRY.items())
    assert all(PlannerConfig(strategy=name).strategy == name for name in REGISTRY)
    with pytest.raises(pydantic.ValidationError, match=r"Input should be one of .*'variance'.*got 'bayes'"):
        PlannerConfig(strategy="bayes")


def test_a_name_is_registered_once():
    with pytest.raises(TypeError, match="strategy name 'sobol' is taken by Sobol"):
        class Copy(Strategy, name="sobol"):  # noqa: F841 - refused as it is defined
            pass


def test_each_strategy_declares_what_it_needs():
    needs = {name: (cls.needs.errors, cls.needs.model) for name, cls in REGISTRY.items() if name in STRATEGIES}
    assert needs == {"error": (2, None), "variance": (2, None), "tail": (2, None), "ensemble": (0, "disagreement"),
                     "information": (0, "information"), "multifidelity": (2, None), "sobol": (0, None),
                     "random": (0, None)}
    assert [name for name, cls in REGISTRY.items() if cls.sequence and name in STRATEGIES] == ["sobol"]
    with pytest.raises(TypeError, match="unknown strategy attribute 'needz'"):
        type("Odd", (REGISTRY["sobol"],), {}, needz=Needs())


def test_make_strategy_builds_the_named_one_or_names_the_choices():
    strategy = make_strategy("variance", FAST, seed=4)
    assert type(strategy) is REGISTRY["variance"] and (strategy.settings, strategy.seed) == (FAST, 4)
    with pytest.raises(ValueError, match=r"^strategy: unknown 'nope'; choose one of "
                                         r"sobol, random, ensemble, information, error, variance, tail, "
                                         r"multifidelity\b"):
        make_strategy("nope")


def _rank_one_information(c: torch.Tensor) -> torch.Tensor:
    v = torch.stack([c[:, 0], 1.0 - c[:, 1]], dim=1)
    return v[:, :, None] * v[:, None, :] + 1e-3 * torch.eye(2, dtype=torch.float64)


@pytest.mark.parametrize("name", ["error", "variance", "ensemble", "information", "sobol", "random"])
def test_a_strategy_object_proposes_what_the_one_call_form_does(name, evidence):
    feasible = lambda z: z[:, 0] < 0.9  # noqa: E731
    score = lambda c: torch.exp(-20 * ((c - PEAK) ** 2).sum(1))  # noqa: E731
    one_call = propose(name, SPACE, 3, evidence, seed=5, settings=FAST, feasible=feasible, ensemble_score=score,
                       information=_rank_one_information)
    full = dataclasses.replace(evidence, feasible=feasible, disagreement=score, information=_rank_one_information)
    assert torch.equal(make_strategy(name, FAST, seed=5).propose(SPACE, 3, full), one_call)
    assert one_call.shape == (3, 2) and feasible(one_call).all()
