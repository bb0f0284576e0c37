"""Tail weights: where the surrogate's error is likely among its worst few percent (the ``tail`` strategy).

``error_ivr`` weighs the integrated variance reduction by the expected error exp(μ + σ²/2), which lowers
the uncertainty of the *mean* error over the space. A campaign judged on the p95 of its test error wants
the uncertainty removed where the error's upper tail is decided. Over the integration points z_k, the
weight is the GP's probability that z_k lies in the top ``1 − quantile`` of the log-error landscape:

    w_k = P(g(z_k) ≥ τ(g)),   τ(g) = the ``quantile`` of g(z_1 … z_K),

estimated from S joint posterior samples g_s (a landscape's quantile depends on the whole landscape, so
the samples are joint, not marginal). Each sample puts about (1 − quantile)·K points in its tail, so the
weights sum to about that whatever the GP's scale; a point far below the tail in every sample weighs
nothing. The weights then enter the closed-form greedy reduction of :mod:`closedloop.planners.variance`.
"""
from __future__ import annotations

import torch
from botorch.models.model import Model


def tail_weights(model: Model, points: torch.Tensor, *, quantile: float = 0.95, samples: int = 256,
                 seed: int = 0) -> torch.Tensor:
    """(K,) probability that each of ``points`` (K x d, natural units) is in the ``quantile`` tail of the
    GP's joint posterior over ``points`` (``samples`` joint draws, seeded by ``seed``)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile: must lie in (0, 1), got {quantile}")
    if points.ndim != 2 or len(points) < 2:
        raise ValueError(f"points: need K x d with K ≥ 2, got shape {tuple(points.shape)}")
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        draws = model.posterior(points.to(torch.float64)).rsample(torch.Size([samples])).squeeze(-1)  # S x K
    threshold = torch.quantile(draws, quantile, dim=1, keepdim=True)
    return (draws >= threshold).to(torch.float64).mean(dim=0)
