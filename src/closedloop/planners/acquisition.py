"""Batch proposals from a GP: q points that maximise a batch acquisition inside the design box.

Acquisitions (all quasi-MC over the joint posterior of the q points, optimised jointly with
``optimize_acqf``, multi-start L-BFGS-B within bounds):

- ``qucb``: E[max_j μ(x_j) + √(βπ/2)|f(x_j) − μ(x_j)|] on the GP of the log error: where the
  surrogate is predicted worst, or most uncertain.
- ``qlognei``: log noisy expected improvement over the best (largest) observed log error.
- ``qnipv``: −∫ σ²(x | D ∪ X) dx over the box (Sobol points), the integrated posterior variance
  left after observing X: pure uncertainty reduction, blind to the error's size.
- ``error_ivr``: the same, with the integral weighted by the expected error exp(μ + σ²/2), so the
  uncertainty removed counts where the surrogate is bad (closed form, planners/variance.py).
- ``tail_ivr``: the same, weighted by each point's probability of lying in the top 5 % of the log
  error (planners/tail.py), so the uncertainty removed counts where the p95 of the error is decided.

``pending`` (points proposed but still simulating) enter as BoTorch ``X_pending``: the acquisition
is evaluated as if they were already observed (their outcome marginalised), so the batch does not
pile onto them. Integer axes are rounded after optimisation. Infeasible proposals (a source inside a
pillar, a region where simulations failed) are repaired to the best acceptable point of a Sobol
pool, scored by the single-point acquisition, and near-duplicates of each other, of earlier cases or
of pending points are replaced the same way.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from botorch.acquisition import AcquisitionFunction, qUpperConfidenceBound
from botorch.acquisition.active_learning import qNegIntegratedPosteriorVariance
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler

from closedloop.planners.design import DesignSpace, sobol_design
from closedloop.planners.tail import tail_weights
from closedloop.planners.variance import greedy_variance_batch

Feasible = Callable[[torch.Tensor], torch.Tensor]  # (n x d) natural units -> (n,) bool

ACQUISITIONS = ("qucb", "qlognei", "qnipv", "error_ivr", "tail_ivr")


def make_acquisition(model: Model, space: DesignSpace, name: str, *, seed: int, beta: float = 4.0,
                     mc_samples: int = 64, observed: torch.Tensor | None = None,
                     pending: torch.Tensor | None = None, integration_points: int = 256) -> AcquisitionFunction:
    """The named batch acquisition on ``model``, with ``pending`` (m x d, natural units) as X_pending."""
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
    x_pending = pending.to(torch.float64) if pending is not None and len(pending) else None
    if name == "qucb":
        return qUpperConfidenceBound(model, beta=beta, sampler=sampler, X_pending=x_pending)
    if name == "qlognei":
        if observed is None or len(observed) == 0:
            raise ValueError("acquisition 'qlognei': needs the observed points (X_baseline)")
        return qLogNoisyExpectedImprovement(model, X_baseline=observed.to(torch.float64), sampler=sampler,
                                            X_pending=x_pending, prune_baseline=True, cache_root=False)
    if name == "qnipv":
        points = sobol_design(space, integration_points, seed=seed + 104729)
        # the variance after observing X does not depend on the fantasised values: one fantasy
        nipv = qNegIntegratedPosteriorVariance(model, mc_points=points)
        return nipv if x_pending is None else WithPending(nipv, x_pending)
    raise ValueError(f"acquisition: unknown {name!r}; choose one of {', '.join(ACQUISITIONS)}")


class WithPending(AcquisitionFunction):
    """α(X ∪ P): the inner batch acquisition evaluated with the pending points P appended to X."""

    def __init__(self, inner: AcquisitionFunction, pending: torch.Tensor) -> None:
        super().__init__(model=inner.model)
        self.inner = inner
        self.register_buffer("pending", pending)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        pending = self.pending.to(X).expand(*X.shape[:-2], *self.pending.shape)
        return self.inner(torch.cat([X, pending], dim=-2))


def propose_batch(model: Model, space: DesignSpace, q: int, *, seed: int, beta: float = 4.0,
                  num_restarts: int = 8, raw_samples: int = 256, mc_samples: int = 128,
                  feasible: Feasible | None = None, existing: torch.Tensor | None = None,
                  min_distance: float = 1e-3, acquisition: str = "qucb",
                  pending: torch.Tensor | None = None, observed: torch.Tensor | None = None,
                  integration_points: int = 256, maxiter: int = 50, optimizer: str = "lbfgs",
                  pool_size: int = 1024) -> torch.Tensor:
    """``q x d`` proposals in natural units, inside the bounds, feasible and mutually distinct.

    ``min_distance`` is measured in the unit cube; ``existing`` (n x d) are points already run,
    ``pending`` (m x d) points still simulating (X_pending, and kept ``min_distance`` away too);
    ``observed`` (the GP's training inputs) is the baseline of ``qlognei``. ``maxiter`` caps the
    L-BFGS-B iterations of each restart (with ``num_restarts``, ``raw_samples`` and ``mc_samples``
    it sets the latency; bench/active_learning.py measures it). ``optimizer = "pool"`` instead picks
    the batch greedily from ``pool_size`` feasible Sobol points, re-scoring with the chosen points
    as pending after each pick (sequential greedy; ``qnipv`` always does, its fantasy models make
    gradient steps slow; it uses the closed form of :mod:`closedloop.planners.variance`).
    """
    if q < 1:
        raise ValueError(f"q must be at least 1, got {q}")
    for label, pts in (("existing", existing), ("pending", pending), ("observed", observed)):
        if pts is not None and (pts.ndim != 2 or pts.shape[1] != space.dim):
            raise ValueError(f"{label}: expected n x {space.dim} points, got {tuple(pts.shape)}")
    if optimizer not in ("lbfgs", "pool"):
        raise ValueError(f"optimizer: unknown {optimizer!r}; choose 'lbfgs' or 'pool'")
    settings = dict(seed=seed, beta=beta, mc_samples=mc_samples, observed=observed,
                    integration_points=integration_points)
    pool = sobol_design(space, pool_size, seed=seed + 7919)
    if feasible is not None:
        pool = pool[feasible(pool)]
        if pool.shape[0] == 0:
            raise ValueError(f"no feasible point found in the design space ({pool_size} Sobol samples)")
    taken = [space.to_unit(p.to(torch.float64)) for p in (existing, pending) if p is not None and len(p)]
    if acquisition in ("qnipv", "error_ivr", "tail_ivr"):
        integration = sobol_design(space, integration_points, seed=seed + 104729)
        weights = None
        if acquisition == "error_ivr":
            with torch.no_grad():
                post = model.posterior(integration)
                weights = (post.mean + post.variance / 2).squeeze(-1).exp()
        elif acquisition == "tail_ivr":
            weights = tail_weights(model, integration, seed=seed)
        every = [p for p in (existing, pending) if p is not None and len(p)]
        return greedy_variance_batch(model, space, q, pool, integration, pending=pending,
                                     taken=torch.cat(every) if every else None, min_distance=min_distance,
                                     weights=weights)
    if optimizer == "pool":
        return _greedy_from_pool(model, space, acquisition, q, pool, pending, taken, min_distance, settings)
    acqf = make_acquisition(model, space, acquisition, pending=pending, **settings)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        x, _ = optimize_acqf(acqf, bounds=space.bounds(), q=q, num_restarts=num_restarts,
                             raw_samples=raw_samples, options={"seed": seed, "maxiter": maxiter})
    x = space.snap(x.detach())
    out = []
    for j in range(q):
        cand = x[j: j + 1]
        if not _acceptable(cand, space, feasible, taken, min_distance):
            cand = _repair(pool, space, acqf, taken, min_distance)
        out.append(cand)
        taken.append(space.to_unit(cand))
    return torch.cat(out)


def _greedy_from_pool(model: Model, space: DesignSpace, acquisition: str, q: int, pool: torch.Tensor,
                      pending: torch.Tensor | None, taken: list[torch.Tensor], min_distance: float,
                      settings: dict) -> torch.Tensor:
    """Sequential greedy over the pool: each pick maximises α(x | pending ∪ picks so far)."""
    chosen: list[torch.Tensor] = []
    base = pending.to(torch.float64) if pending is not None and len(pending) else pool[:0]
    for _ in range(q):
        acqf = make_acquisition(model, space, acquisition, pending=torch.cat([base, *chosen]), **settings)
        pick = _repair(pool, space, acqf, taken, min_distance)
        chosen.append(pick)
        taken = [*taken, space.to_unit(pick)]
    return torch.cat(chosen)


def _acceptable(cand: torch.Tensor, space: DesignSpace, feasible: Feasible | None,
                taken: list[torch.Tensor], min_distance: float) -> bool:
    if feasible is not None and not bool(feasible(cand)[0]):
        return False
    if taken:
        t = torch.cat(taken)
        if torch.cdist(space.to_unit(cand), t).min() < min_distance:
            return False
    return True


def _repair(pool: torch.Tensor, space: DesignSpace, acqf: AcquisitionFunction,
            taken: list[torch.Tensor], min_distance: float) -> torch.Tensor:
    """The pool point with the best single-point acquisition value, among those acceptable."""
    ok = torch.ones(pool.shape[0], dtype=torch.bool)
    if taken:
        ok &= torch.cdist(space.to_unit(pool), torch.cat(taken)).min(dim=1).values >= min_distance
    if not ok.any():
        raise ValueError("design space exhausted: every pool point duplicates an earlier case")
    with torch.no_grad():
        values = torch.cat([acqf(chunk.unsqueeze(1)) for chunk in pool[ok].split(256)])
    return pool[ok][values.argmax()].unsqueeze(0)
