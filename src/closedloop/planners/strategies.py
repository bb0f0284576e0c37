"""Strategies, selectable by name: what the next batch of simulations should be.

- ``error``: GP on the log validation error, batch acquisition ``qucb``, ``qlognei`` or
  ``error_ivr`` (error-weighted integrated variance reduction) on it;
- ``variance``: the same GP, integrated posterior variance reduction (``qnipv``);
- ``ensemble``: disagreement of an ensemble of surrogates on a Sobol candidate pool, greedy batch;
- ``information``: the surrogate's own parameter information (sketched Fisher) of each candidate of
  a Sobol pool, greedy D-optimal batch given the cases run and pending
  (:mod:`closedloop.planners.information`);
- ``sobol``: the continuation of a scrambled Sobol sequence; ``random``: uniform points.

Every strategy proposes only feasible points (the caller's rule, e.g. no source inside a solid),
clear of failed simulations (:mod:`closedloop.planners.failures`), and not within ``min_distance``
of a point already run or still pending; model-based strategies also treat pending points as
BoTorch ``X_pending``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from closedloop.planners.acquisition import Feasible, propose_batch
from closedloop.planners.design import DesignSpace, random_design, sobol_design
from closedloop.planners.ensemble import greedy_batch
from closedloop.planners.failures import both, clear_of_failures
from closedloop.planners.gp import fit_error_model
from closedloop.planners.information import greedy_information_batch

STRATEGIES = ("error", "variance", "ensemble", "information", "sobol", "random")
EnsembleScore = Callable[[torch.Tensor], torch.Tensor]  # (n x d) candidates -> (n,) disagreement
Information = Callable[[torch.Tensor], torch.Tensor]  # (n x d) scenarios -> (n, K, K) information


@dataclass(frozen=True)
class PlannerSettings:
    """How hard each strategy searches (the latency knobs) and how it treats failures."""

    acquisition: str = "qucb"
    beta: float = 4.0
    num_restarts: int = 4
    raw_samples: int = 128
    mc_samples: int = 64
    maxiter: int = 50
    optimizer: str = "lbfgs"
    pool_size: int = 1024
    gp_maxiter: int = 100
    integration_points: int = 128
    candidates: int = 256
    ensemble_length: float = 0.15
    failure_radius: float = 0.1
    min_distance: float = 1e-3


@dataclass
class Evidence:
    """What the planner knows, all in natural units (n x d): validated points and their log errors,
    failed points, points still simulating, and every point ever proposed."""

    observed: torch.Tensor
    log_error: torch.Tensor
    failed: torch.Tensor | None = None
    pending: torch.Tensor | None = None
    existing: torch.Tensor | None = None


def _empty(space: DesignSpace) -> torch.Tensor:
    return torch.empty(0, space.dim, dtype=torch.float64)


def _taken(space: DesignSpace, evidence: Evidence) -> torch.Tensor:
    parts = [p.to(torch.float64) for p in (evidence.existing, evidence.pending, evidence.failed)
             if p is not None and len(p)]
    return torch.cat(parts) if parts else _empty(space)


def first_acceptable(space: DesignSpace, points: torch.Tensor, q: int, taken: torch.Tensor,
                     feasible: Feasible | None, min_distance: float) -> tuple[torch.Tensor, int]:
    """The first ``q`` feasible points of ``points`` that keep ``min_distance`` (unit cube) from
    ``taken`` and from each other; and how many of ``points`` were consumed."""
    ok = feasible(points) if feasible is not None else torch.ones(len(points), dtype=torch.bool)
    chosen: list[torch.Tensor] = []
    seen = space.to_unit(taken) if len(taken) else _empty(space)
    for j in range(len(points)):
        if not ok[j]:
            continue
        u = space.to_unit(points[j: j + 1])
        if len(seen) and torch.cdist(u, seen).min() < min_distance:
            continue
        chosen.append(points[j: j + 1])
        seen = torch.cat([seen, u])
        if len(chosen) == q:
            return torch.cat(chosen), j + 1
    raise ValueError(f"fewer than {q} acceptable points among {len(points)} (feasible, clear of failures, new)")


def candidate_pool(strategy: str, space: DesignSpace, n: int, q: int, rule: Feasible | None, *,
                   seed: int) -> torch.Tensor:
    """The feasible points of an ``n``-point Sobol pool, for strategies that score candidates."""
    pool = sobol_design(space, n, seed=seed)
    pool = pool[rule(pool)] if rule is not None else pool
    if len(pool) < q:
        raise ValueError(f"strategy {strategy!r}: only {len(pool)} feasible candidates of {n}")
    return pool


def propose(strategy: str, space: DesignSpace, q: int, evidence: Evidence, *, seed: int,
            settings: PlannerSettings = PlannerSettings(), feasible: Feasible | None = None,
            ensemble_score: EnsembleScore | None = None, information: Information | None = None,
            sobol_skip: int = 0) -> torch.Tensor:
    """``q x d`` new points by ``strategy`` (see module docstring)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: unknown {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if q < 1:
        raise ValueError(f"q must be at least 1, got {q}")
    rule = both(feasible, clear_of_failures(space, evidence.failed, settings.failure_radius))
    taken = _taken(space, evidence)
    if strategy == "sobol":
        draw = sobol_design(space, len(taken) + 64 * q + 256, seed=seed, skip=sobol_skip)
        return first_acceptable(space, draw, q, taken,
                                rule, settings.min_distance)[0]
    if strategy == "random":
        return first_acceptable(space, random_design(space, 64 * q + 256, seed=seed), q, taken, rule,
                                settings.min_distance)[0]
    if strategy == "ensemble":
        if ensemble_score is None:
            raise ValueError("strategy 'ensemble': needs an ensemble_score function (member disagreement)")
        pool = candidate_pool("ensemble", space, settings.candidates, q, rule, seed=seed + 31337)
        return greedy_batch(space, pool, ensemble_score(pool), q, taken=taken, length=settings.ensemble_length,
                            min_distance=settings.min_distance)
    if strategy == "information":
        if information is None:
            raise ValueError("strategy 'information': needs an information function (the surrogate's sketched Fisher)")
        pool = candidate_pool("information", space, settings.candidates, q, rule, seed=seed + 4242)
        # what the surrogate learns from: cases run (validated) and pending; failed ones teach nothing
        known_x = [p.to(torch.float64) for p in (evidence.observed, evidence.pending) if p is not None and len(p)]
        both_info = information(torch.cat(known_x + [pool]))
        n_known = sum(len(p) for p in known_x)
        return greedy_information_batch(space, pool, both_info[n_known:], both_info[:n_known], q, taken=taken,
                                        min_distance=settings.min_distance)
    # model-based: a GP on the log validation error (failed cases are not in ``observed``)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gp = fit_error_model(space, evidence.observed, evidence.log_error, maxiter=settings.gp_maxiter)
    acquisition = "qnipv" if strategy == "variance" else settings.acquisition
    existing = evidence.existing if evidence.existing is not None else evidence.observed
    return propose_batch(gp, space, q, seed=seed, beta=settings.beta, num_restarts=settings.num_restarts,
                         raw_samples=settings.raw_samples, mc_samples=settings.mc_samples, feasible=rule,
                         existing=existing, pending=evidence.pending, observed=evidence.observed,
                         acquisition=acquisition, integration_points=settings.integration_points,
                         min_distance=settings.min_distance, maxiter=settings.maxiter,
                         optimizer=settings.optimizer, pool_size=settings.pool_size)
