"""Query by committee: score candidates by the disagreement of an ensemble of surrogates.

For member predictions p_k(x) (K members, each a field per candidate), the disagreement is the
relative spread s(x) = √(mean_k ‖p_k − p̄‖²) / (‖p̄‖ + ε): where equally plausible surrogates
differ most, one more simulation teaches the most. A batch is picked greedily from a candidate pool:
the best-scoring candidate is taken, then every score is multiplied by the penalty
1 − exp(−(d/ℓ)²), d the unit-cube distance to the chosen (or pending, or earlier) point, so the
next pick is a different region rather than the neighbour of the first.
"""
from __future__ import annotations

import torch

from closedloop.planners.design import DesignSpace


def disagreement(predictions: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(K, n, …) member predictions → (n,) relative spread about the ensemble mean."""
    if predictions.ndim < 2 or predictions.shape[0] < 2:
        raise ValueError(f"predictions: need K ≥ 2 members along dim 0, got shape {tuple(predictions.shape)}")
    flat = predictions.reshape(predictions.shape[0], predictions.shape[1], -1).to(torch.float64)
    mean = flat.mean(dim=0)
    spread = ((flat - mean) ** 2).sum(dim=-1).mean(dim=0).sqrt()
    return spread / (mean.norm(dim=-1) + eps)


def greedy_batch(space: DesignSpace, candidates: torch.Tensor, scores: torch.Tensor, q: int, *,
                 taken: torch.Tensor | None = None, length: float = 0.15,
                 min_distance: float = 1e-3) -> torch.Tensor:
    """``q x d`` candidates of highest penalised score; ``taken`` (m x d: earlier and pending points)
    penalise their neighbourhoods from the start. ``length`` ℓ is in the unit cube."""
    if q < 1:
        raise ValueError(f"q must be at least 1, got {q}")
    if candidates.ndim != 2 or candidates.shape[1] != space.dim or scores.shape != (candidates.shape[0],):
        raise ValueError(f"candidates must be n x {space.dim} with one score each, got "
                         f"{tuple(candidates.shape)} and {tuple(scores.shape)}")
    u = space.to_unit(candidates.to(torch.float64))
    value = scores.to(torch.float64).clone()
    value = value - value.min() + 1e-9  # penalties multiply: keep every score positive
    alive = torch.ones(len(u), dtype=torch.bool)

    def penalise(points: torch.Tensor) -> None:
        nonlocal value
        d = torch.cdist(u, points).min(dim=1).values
        value = value * (1 - torch.exp(-(d / length) ** 2))
        alive.logical_and_(d >= min_distance)

    if taken is not None and len(taken):
        penalise(space.to_unit(taken.to(torch.float64)))
    chosen = []
    for _ in range(q):
        if not alive.any():
            raise ValueError("candidate pool exhausted: every candidate duplicates a chosen or earlier point")
        j = int(torch.where(alive, value, torch.full_like(value, -1.0)).argmax())
        chosen.append(j)
        penalise(u[j: j + 1])
    return candidates[chosen]
