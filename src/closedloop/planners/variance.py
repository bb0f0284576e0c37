"""Integrated posterior variance reduction, greedy and in closed form (the ``variance`` strategy).

Observing y(x) = g(x) + ε lowers the GP's posterior covariance by the rank-one update
Σ'(a, b) = Σ(a, b) − Σ(a, x) Σ(x, b) / (Σ(x, x) + σ²), which does not depend on the value
observed. The integrated variance ∫ σ²(z) dz, estimated on Sobol points z_k, thus drops by
IVR(x) = Σ_k Σ(z_k, x)² / (Σ(x, x) + σ²). The batch takes the pool point of largest IVR, applies
its update (as for pending points, which are applied first), and repeats: sequential greedy
qNIPV, exact for a GP, at the cost of one joint posterior over pool ∪ pending ∪ z.

With ``weights`` w_k the reduction is Σ_k w_k Σ(z_k, x)² / (Σ(x, x) + σ²). The ``error_ivr``
acquisition of the error strategy sets w_k = exp(μ(z_k) + σ²(z_k)/2), the GP's expected error at
z_k: it spends simulations where they most reduce the uncertainty of the *mean* error over the
space, which weighs high-error regions without chasing the single worst point as qUCB does.
"""
from __future__ import annotations

import torch
from botorch.models.model import Model

from closedloop.planners.design import DesignSpace


def greedy_variance_batch(model: Model, space: DesignSpace, q: int, pool: torch.Tensor,
                          integration: torch.Tensor, *, pending: torch.Tensor | None = None,
                          taken: torch.Tensor | None = None, min_distance: float = 1e-3,
                          weights: torch.Tensor | None = None, costs: torch.Tensor | None = None) -> torch.Tensor:
    """``q x d`` points of ``pool`` that most reduce the (weighted) integrated variance over ``integration``;
    with ``costs`` (one per pool point, > 0) the reduction per unit cost (planners/multifidelity.py)."""
    if q < 1:
        raise ValueError(f"q must be at least 1, got {q}")
    pend = pending.to(torch.float64) if pending is not None and len(pending) else pool[:0]
    n_pool, n_pend = len(pool), len(pend)
    joint = torch.cat([pool, pend, integration.to(torch.float64)])
    with torch.no_grad():
        cov = model.posterior(joint).distribution.covariance_matrix.squeeze(0).clone()
        probe = joint[:1]
        noise = float(model.posterior(probe, observation_noise=True).variance.squeeze()
                      - model.posterior(probe).variance.squeeze())
    noise = max(noise, 1e-10)

    def observe(i: int) -> None:
        nonlocal cov
        col = cov[:, i].clone()
        cov = cov - torch.outer(col, col) / (col[i] + noise)

    for k in range(n_pend):
        observe(n_pool + k)
    alive = torch.ones(n_pool, dtype=torch.bool)
    unit = space.to_unit(pool)
    if taken is not None and len(taken):
        alive &= torch.cdist(unit, space.to_unit(taken.to(torch.float64))).min(dim=1).values >= min_distance
    z = slice(n_pool + n_pend, None)
    w = torch.ones(len(integration), dtype=torch.float64) if weights is None else weights.to(torch.float64)
    if w.shape != (len(integration),) or (w < 0).any():
        raise ValueError(f"weights: need {len(integration)} non-negative values, got shape {tuple(w.shape)}")
    per = torch.ones(n_pool, dtype=torch.float64) if costs is None else costs.to(torch.float64)
    if per.shape != (n_pool,) or not (per > 0).all():
        raise ValueError(f"costs: need {n_pool} positive values, got shape {tuple(per.shape)}")
    chosen = []
    for _ in range(q):
        if not alive.any():
            raise ValueError("design space exhausted: every pool point duplicates an earlier case")
        ivr = (w[:, None] * cov[z, :n_pool] ** 2).sum(dim=0) / (cov.diagonal()[:n_pool] + noise) / per
        j = int(torch.where(alive, ivr, torch.full_like(ivr, -1.0)).argmax())
        chosen.append(j)
        observe(j)
        alive &= torch.cdist(unit, unit[j: j + 1]).squeeze(1) >= min_distance
    return pool[chosen]
