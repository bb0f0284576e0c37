"""The error model over (design point, fidelity) and the cost-aware batch that chooses both.

GP. y = log relative L2 of each case, predicted at its own level s ∈ [0, 1] before training on it
(top = 1). BoTorch's ``SingleTaskMultiFidelityGP`` with ``data_fidelities = [d]`` (the fidelity is
column d of an ``n x (d+1)`` input; the linear-truncated fidelity kernel lets the error's dependence
on x change with s), inputs normalised to the box × [0, 1], outcomes standardised, exact marginal
likelihood. The top-level error where only lower levels ran is the posterior at s = 1
(``project_to_target_fidelity``).

Acquisition: cost-weighted integrated variance reduction at the top level. Observing (x, s) lowers the
top-level posterior covariance by a rank-one update (planners/variance.py), so over Sobol points
z_k at s = 1 with weights w_k = E[exp g(z_k, 1)] = exp(μ + σ²/2) (the expected top-level error, as in
``error_ivr``),

    α(x, s) = Σ_k w_k Σ((z_k, 1), (x, s))² / (Σ((x, s), (x, s)) + σ²) / cost_s(x),

cost_s(x) the cost model's CPU-seconds. The batch is greedy: the pool point × level of largest α, its
update applied (pending points first), repeat. A cheap level wins where it tells the top level
nearly as much for less; the top level where the levels' errors decorrelate.
"""
from __future__ import annotations

import warnings

import torch
from botorch.acquisition.utils import project_to_target_fidelity
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskMultiFidelityGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

from closedloop.planners.design import DesignSpace, sobol_design
from closedloop.planners.variance import greedy_variance_batch


def fidelity_space(space: DesignSpace) -> DesignSpace:
    """The design box × the fidelity axis [0, 1] (the last column)."""
    flags = space.integer if space.integer is not None else (False,) * space.dim
    return DesignSpace(names=(*space.names, "fidelity"), lower=(*space.lower, 0.0), upper=(*space.upper, 1.0),
                       integer=(*flags, False))


def fit_multifidelity_error_model(space: DesignSpace, x: torch.Tensor, fidelity: torch.Tensor, y: torch.Tensor,
                                  maxiter: int = 200) -> SingleTaskMultiFidelityGP:
    """The MF GP of ``y`` (n,) at ``x`` (n x d, natural units) and levels ``fidelity`` (n,) in [0, 1]."""
    x = x.to(torch.float64)
    s = fidelity.to(torch.float64).reshape(-1)
    y = y.to(torch.float64).reshape(-1, 1)
    if x.ndim != 2 or x.shape[1] != space.dim:
        raise ValueError(f"x must be n x {space.dim}, got {tuple(x.shape)}")
    if not (len(s) == len(y) == len(x)):
        raise ValueError(f"x, fidelity and y need equal lengths, got {len(x)}, {len(s)}, {len(y)}")
    if len(x) < 2:
        raise ValueError(f"a GP needs at least 2 observations, got {len(x)}")
    if ((s < 0) | (s > 1)).any():
        raise ValueError("fidelity: every level must lie in [0, 1] (top = 1)")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("x and y must be finite; drop failed or unvalidated cases first")
    full = fidelity_space(space)
    model = SingleTaskMultiFidelityGP(torch.cat([x, s[:, None]], dim=1), y, data_fidelities=[space.dim],
                                      input_transform=Normalize(d=full.dim, bounds=full.bounds()),
                                      outcome_transform=Standardize(m=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few points: L-BFGS may stop early; the fit is still usable
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                         optimizer_kwargs={"options": {"maxiter": maxiter}})
    model.eval()
    return model


def at_top(x: torch.Tensor) -> torch.Tensor:
    """``n x d`` design points → ``n x (d+1)`` at the top level (s = 1)."""
    d = x.shape[1] + 1
    return project_to_target_fidelity(torch.cat([x, torch.zeros(len(x), 1, dtype=x.dtype)], dim=1),
                                      target_fidelities={d - 1: 1.0}, d=d)


def cost_aware_batch(model: SingleTaskMultiFidelityGP, space: DesignSpace, q: int, pool: torch.Tensor,
                     levels: tuple[float, ...], costs: torch.Tensor, *, seed: int, integration_points: int = 128,
                     pending: torch.Tensor | None = None, taken: torch.Tensor | None = None,
                     min_distance: float = 1e-3) -> torch.Tensor:
    """``q x (d+1)`` (point, level) pairs of largest top-level error-weighted variance reduction per
    CPU-second. ``pool``: n x d feasible candidates; ``levels``: the L level values; ``costs``: n x L
    seconds; ``pending`` and ``taken``: m x (d+1) with their levels."""
    n, n_levels = len(pool), len(levels)
    if costs.shape != (n, n_levels):
        raise ValueError(f"costs: need {n} x {n_levels} (pool x levels), got {tuple(costs.shape)}")
    candidates = torch.cat([torch.cat([pool, torch.full((n, 1), s, dtype=pool.dtype)], dim=1) for s in levels])
    z = at_top(sobol_design(space, integration_points, seed=seed + 104729))
    with torch.no_grad():
        post = model.posterior(z)
        weights = torch.exp(post.mean.squeeze(-1) + 0.5 * post.variance.squeeze(-1))
    return greedy_variance_batch(model, fidelity_space(space), q, candidates, z, pending=pending, taken=taken,
                                 min_distance=min_distance, weights=weights, costs=costs.T.reshape(-1))
