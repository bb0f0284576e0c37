"""Strategies: what the next batch of simulations should be, each an object in a registry.

- ``error``: GP on the log validation error, batch acquisition ``qucb``, ``qlognei`` or
  ``error_ivr`` (error-weighted integrated variance reduction) on it;
- ``variance``: the same GP, integrated posterior variance reduction (``qnipv``);
- ``tail``: the same GP, the reduction weighted by each point's probability of lying in the top 5 %
  of the log error (``tail_ivr``, :mod:`closedloop.planners.tail`): aimed at the p95, not the mean;
- ``ensemble``: disagreement of an ensemble of surrogates on a Sobol candidate pool, greedy batch;
- ``information``: the surrogate's own parameter information (sketched Fisher) of each candidate of
  a Sobol pool, greedy D-optimal batch given the cases run and pending
  (:mod:`closedloop.planners.information`);
- ``multifidelity``: the error GP over (point, fidelity) and the cost-aware batch that picks both
  (:mod:`closedloop.planners.multifidelity`); proposes ``q x (d+1)``, the level value last;
- ``sobol``: the continuation of a scrambled Sobol sequence; ``random``: uniform points.

A strategy declares what it needs (:class:`Needs`: validated errors for a GP, a model score from
the surrogate) and proposes with ``propose(space, q, evidence) -> q x d``. Every strategy proposes
only feasible points (``evidence.feasible``, e.g. no source inside a solid), clear of failed
simulations (:mod:`closedloop.planners.failures`), and not within ``min_distance`` of a point
already run or still pending; GP strategies also treat pending points as BoTorch ``X_pending``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import torch

from closedloop.planners.acquisition import Feasible, propose_batch
from closedloop.planners.design import DesignSpace, random_design, sobol_design
from closedloop.planners.ensemble import greedy_batch
from closedloop.planners.failures import both, clear_of_failures
from closedloop.planners.gp import fit_error_model
from closedloop.planners.information import greedy_information_batch
from closedloop.planners.multifidelity import cost_aware_batch, fit_multifidelity_error_model

EnsembleScore = Callable[[torch.Tensor], torch.Tensor]  # (n x d) candidates -> (n,) disagreement
Information = Callable[[torch.Tensor], torch.Tensor]  # (n x d) scenarios -> (n, K, K) information
ModelScore = Literal["disagreement", "information"]


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
    failed points, points still simulating, every point ever proposed; which points are feasible;
    and, for a strategy that needs one, the surrogate's score of candidate points."""

    observed: torch.Tensor
    log_error: torch.Tensor
    failed: torch.Tensor | None = None
    pending: torch.Tensor | None = None
    existing: torch.Tensor | None = None
    feasible: Feasible | None = None
    disagreement: EnsembleScore | None = None
    information: Information | None = None
    # multi-fidelity: the level s ∈ [0, 1] of each observed / pending / existing point, the levels, and
    # the cost model: (n x d) points -> (n x L) CPU-seconds at each level
    observed_fidelity: torch.Tensor | None = None
    pending_fidelity: torch.Tensor | None = None
    existing_fidelity: torch.Tensor | None = None
    levels: tuple[float, ...] = ()
    level_cost: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(frozen=True)
class Needs:
    """What a strategy needs before it can propose: ``errors`` validated cases (a GP needs two;
    with fewer the campaign continues its Sobol design) and a ``model`` score of the surrogate."""

    errors: int = 0
    model: ModelScore | None = None


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


REGISTRY: dict[str, type[Strategy]] = {}  # name -> strategy class, filled as the classes are defined


@dataclass(frozen=True)
class Strategy:
    """The base of every strategy: its name, what it needs, its settings and seed.

    ``sequence`` strategies continue one design across rounds, so a campaign seeds them with its
    own seed rather than a seed per round.
    """

    settings: PlannerSettings = PlannerSettings()
    seed: int = 0
    name: ClassVar[str] = ""
    needs: ClassVar[Needs] = Needs()
    sequence: ClassVar[bool] = False
    chooses_fidelity: ClassVar[bool] = False  # proposes q x (d+1), the level value last

    def __init_subclass__(cls, **declared: Any) -> None:
        """A subclass declares its class attributes in its header: ``class Sobol(Strategy, name="sobol")``;
        one that declares a ``name`` is registered under it (:data:`REGISTRY`), wherever it is defined,
        so a new strategy is one class: ``[planner] strategy = "NAME"`` then runs it."""
        super().__init_subclass__()
        for key, value in declared.items():
            if not hasattr(cls, key):
                raise TypeError(f"{cls.__name__}: unknown strategy attribute {key!r}")
            setattr(cls, key, value)
        if "name" in declared:
            if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
                raise TypeError(f"{cls.__name__}: strategy name {cls.name!r} is taken by {REGISTRY[cls.name].__name__}")
            REGISTRY[cls.name] = cls

    def rule(self, space: DesignSpace, evidence: Evidence) -> Feasible:
        """Feasible and clear of failed cases."""
        return both(evidence.feasible, clear_of_failures(space, evidence.failed, self.settings.failure_radius))

    def propose(self, space: DesignSpace, q: int, evidence: Evidence) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class Sobol(Strategy, name="sobol", sequence=True):
    """The first acceptable points of the seeded scrambled Sobol sequence (from ``skip``)."""

    skip: int = 0

    def propose(self, space: DesignSpace, q: int, evidence: Evidence) -> torch.Tensor:
        taken = _taken(space, evidence)
        draw = sobol_design(space, len(taken) + 64 * q + 256, seed=self.seed, skip=self.skip)
        return first_acceptable(space, draw, q, taken, self.rule(space, evidence), self.settings.min_distance)[0]


@dataclass(frozen=True)
class Random(Strategy, name="random"):
    """Uniform random points."""

    def propose(self, space: DesignSpace, q: int, evidence: Evidence) -> torch.Tensor:
        return first_acceptable(space, random_design(space, 64 * q + 256, seed=self.seed), q, _taken(space, evidence),
                                self.rule(space, evidence), self.settings.min_distance)[0]


@dataclass(frozen=True)
class ScoredPool(Strategy):
    """A batch from a feasible Sobol pool of candidates scored by the surrogate (``needs.model``)."""

    pool_offset: ClassVar[int] = 0  # the pool's seed is the strategy's plus this
    missing: ClassVar[str] = ""  # what the error names when the score is not given

    def pool(self, space: DesignSpace, q: int, evidence: Evidence) -> torch.Tensor:
        if self.needs.model is None or getattr(evidence, self.needs.model) is None:
            raise ValueError(f"strategy {self.name!r}: needs {self.missing}")
        return candidate_pool(self.name, space, self.settings.candidates, q, self.rule(space, evidence),
                              seed=self.seed + self.pool_offset)


@dataclass(frozen=True)
class Ensemble(ScoredPool, name="ensemble", needs=Needs(model="disagreement"), pool_offset=31337,
               missing="an ensemble_score function (member disagreement)"):
    """Greedy batch of the candidates the surrogate ensemble disagrees on most."""

    def propose(self, space: DesignSpace, q: int, evidence: Evidence) -> torch.Tensor:
        pool = self.pool(space, q, evidence)
        return greedy_batch(space, pool, evidence.disagreement(pool), q, taken=_taken(space, evidence),
                            length=self.settings.ensemble_length, min_distance=self.settings.min_distance)


@dataclass(frozen=True)
class InformationGain(ScoredPool, name="information", needs=Needs(model="information"), pool_offset=4242,
                      missing="an information function (the surrogate's sketched Fisher)"):
    """Greedy D-optimal batch on the surrogate's sketched Fisher information of the cases run and
    pending (failed ones teach nothing) and of the candidates."""

    def propose(self, space: DesignSpace, q: int, evidence: Evidence) -> torch.Tensor:
        pool = self.pool(space, q, evidence)
        known_x = [p.to(torch.float64) for p in (evidence.observed, evidence.pending) if p is not None and len(p)]
        info = evidence.information(torch.cat(known_x + [pool]))
        n_known = sum(len(p) for p in known_x)
        return greedy_information_batch(space, pool, info[n_known:], info[:n_known], q, taken=_taken(space, evidence),
                                        min_distance=self.settings.min_distance)


@dataclass(frozen=True)
class ErrorSeeking(Strategy, name="error", needs=Needs(errors=2)):
    """A GP on the log validation error (failed cases are not in ``observed``) and a batch
    acquisition on it: ``settings.acquisition``, or ``acquisition`` when the class fixes one."""

    acquisition: ClassVar[str | None] = None

    def propose(self, space: DesignSpace, q: int, evidence: Evidence) -> torch.Tensor:
        s = self.settings
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            gp = fit_error_model(space, evidence.observed, evidence.log_error, maxiter=s.gp_maxiter)
        existing = evidence.existing if evidence.existing is not None else evidence.observed
        return propose_batch(gp, space, q, seed=self.seed, beta=s.beta, num_restarts=s.num_restarts,
                             raw_samples=s.raw_samples, mc_samples=s.mc_samples, feasible=self.rule(space, evidence),
                             existing=existing, pending=evidence.pending, observed=evidence.observed,
                             acquisition=self.acquisition or s.acquisition, integration_points=s.integration_points,
                             min_distance=s.min_distance, maxiter=s.maxiter, optimizer=s.optimizer,
                             pool_size=s.pool_size)


@dataclass(frozen=True)
class VarianceReduction(ErrorSeeking, name="variance", acquisition="qnipv"):
    """The same GP; integrated posterior variance reduction (``qnipv``): learn the map evenly."""


@dataclass(frozen=True)
class TailSeeking(ErrorSeeking, name="tail", acquisition="tail_ivr"):
    """The same GP; integrated variance reduction where the log error is likely in its top 5 %
    (``tail_ivr``): learn the map where the p95 of the error is decided."""


@dataclass(frozen=True)
class MultiFidelity(Strategy, name="multifidelity", needs=Needs(errors=2), chooses_fidelity=True):
    """The MF GP on the log validation error at each case's level and the cost-weighted top-level
    integrated variance reduction on a feasible Sobol pool × the levels."""

    def propose(self, space: DesignSpace, q: int, evidence: Evidence) -> torch.Tensor:
        if evidence.observed_fidelity is None or evidence.level_cost is None or len(evidence.levels) < 2:
            raise ValueError("strategy 'multifidelity': needs the observed levels, the levels and a cost model")
        s = self.settings
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            gp = fit_multifidelity_error_model(space, evidence.observed, evidence.observed_fidelity,
                                               evidence.log_error, maxiter=s.gp_maxiter)
        pool = candidate_pool(self.name, space, s.candidates, q, self.rule(space, evidence), seed=self.seed + 2718)

        def with_levels(x: torch.Tensor | None, level: torch.Tensor | None) -> torch.Tensor | None:
            if x is None or not len(x):
                return None
            lv = level if level is not None else torch.ones(len(x), dtype=torch.float64)
            return torch.cat([x.to(torch.float64), lv.to(torch.float64)[:, None]], dim=1)

        return cost_aware_batch(gp, space, q, pool, evidence.levels, evidence.level_cost(pool), seed=self.seed,
                                integration_points=s.integration_points,
                                pending=with_levels(evidence.pending, evidence.pending_fidelity),
                                taken=with_levels(evidence.existing, evidence.existing_fidelity),
                                min_distance=s.min_distance)


STRATEGIES = tuple(REGISTRY)  # the built-in strategies; REGISTRY also holds any registered later


def make_strategy(name: str, settings: PlannerSettings = PlannerSettings(), seed: int = 0) -> Strategy:
    """The registered strategy called ``name``; ValueError naming the choices otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"strategy: unknown {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name](settings=settings, seed=seed)


def propose(strategy: str, space: DesignSpace, q: int, evidence: Evidence, *, seed: int,
            settings: PlannerSettings = PlannerSettings(), feasible: Feasible | None = None,
            ensemble_score: EnsembleScore | None = None, information: Information | None = None) -> torch.Tensor:
    """``q x d`` new points by the strategy called ``strategy``: a one-call form of
    ``make_strategy(...).propose(space, q, evidence)`` with the feasibility rule and model scores
    given as arguments."""
    chosen = make_strategy(strategy, settings, seed)
    if q < 1:
        raise ValueError(f"q must be at least 1, got {q}")
    evidence = replace(evidence, feasible=feasible if feasible is not None else evidence.feasible,
                       disagreement=ensemble_score or evidence.disagreement,
                       information=information or evidence.information)
    return chosen.propose(space, q, evidence)
