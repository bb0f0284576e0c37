"""Batches that most constrain the surrogate's parameters: greedy D-optimal design.

Each scenario x carries an information matrix F(x) (K × K; for the surrogate, its Fisher
information in K sketched parameter directions, ``surrogates.sensitivity.fisher_sketch``). With the
cases already run (or pending) the surrogate knows A = λI + Σ_j F(x_j); a new case adds

    gain(x) = log det(A + F(x)) − log det A,

the log-volume by which it shrinks the parameters' posterior (Gaussian approximation, D-optimality).
The batch is chosen greedily: the candidate of largest gain is taken, A ← A + F(x), and again, so a
second pick must be informative about what the first left open (the greedy log det is submodular,
within 1 − 1/e of the best batch). The ridge λ (prior precision) defaults to the mean per-direction
information of one known case, so the first picks are judged against what a case typically teaches.
"""
from __future__ import annotations

import torch

from closedloop.planners.design import DesignSpace


def default_ridge(known: torch.Tensor) -> float:
    """λ = trace(Σ_j F_j) / (K · n): the information per direction of an average known case."""
    if known.ndim != 3 or known.shape[1] != known.shape[2]:
        raise ValueError(f"known: need (n, K, K) information matrices, got shape {tuple(known.shape)}")
    k = known.shape[-1]
    if len(known) == 0:
        return 1.0
    value = float(torch.diagonal(known.sum(0)).sum()) / (k * len(known))
    return value if value > 0 else 1.0


def information_gain(known: torch.Tensor, candidates: torch.Tensor, ridge: float) -> torch.Tensor:
    """(n,) gain of each candidate given ``known`` (m, K, K) information already in hand."""
    k = candidates.shape[-1]
    a = ridge * torch.eye(k, dtype=torch.float64) + known.to(torch.float64).sum(0)
    base = torch.linalg.slogdet(a).logabsdet
    return torch.linalg.slogdet(a + candidates.to(torch.float64)).logabsdet - base


def greedy_information_batch(space: DesignSpace, candidates: torch.Tensor, info: torch.Tensor,
                             known: torch.Tensor, q: int, *, taken: torch.Tensor | None = None,
                             ridge: float | None = None, min_distance: float = 1e-3) -> torch.Tensor:
    """``q x d`` candidates of largest sequential information gain.

    candidates: n x d; info: (n, K, K) their information; known: (m, K, K) that of the cases run or
    pending; taken: points (m' x d) no pick may duplicate (within ``min_distance`` in the unit cube)."""
    if q < 1:
        raise ValueError(f"q must be at least 1, got {q}")
    if candidates.ndim != 2 or candidates.shape[1] != space.dim or info.shape[0] != candidates.shape[0]:
        raise ValueError(f"candidates must be n x {space.dim} with one information matrix each, got "
                         f"{tuple(candidates.shape)} and {tuple(info.shape)}")
    lam = default_ridge(known) if ridge is None else ridge
    if not lam > 0:
        raise ValueError(f"ridge: the prior precision must be > 0, got {lam}")
    u = space.to_unit(candidates.to(torch.float64))
    alive = torch.ones(len(u), dtype=torch.bool)
    if taken is not None and len(taken):
        alive &= torch.cdist(u, space.to_unit(taken.to(torch.float64))).min(dim=1).values >= min_distance
    held = known.to(torch.float64).sum(0, keepdim=True)  # Σ_j F_j of what is known, (1, K, K)
    chosen: list[int] = []
    for _ in range(q):
        if not alive.any():
            raise ValueError("candidate pool exhausted: every candidate duplicates a chosen or earlier point")
        gain = information_gain(held, info, lam)
        j = int(torch.where(alive, gain, torch.full_like(gain, -torch.inf)).argmax())
        chosen.append(j)
        held = held + info[j: j + 1].to(torch.float64)
        alive &= torch.cdist(u, u[j: j + 1]).squeeze(1) >= min_distance
    return candidates[chosen]
