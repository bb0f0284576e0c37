"""Batch proposals: q points that maximise qUCB of the error GP inside the design box.

qUCB(X) = E[max_j μ(x_j) + √(βπ/2)|f(x_j) − μ(x_j)|] by quasi-MC, optimised jointly over the q
points with ``optimize_acqf`` (multi-start L-BFGS-B within bounds). Points where the surrogate is
predicted to be worst, or most uncertain, are simulated next. Infeasible proposals (e.g. a
source inside a pillar) are repaired to the nearest feasible point of a Sobol pool, scored by the
acquisition, and near-duplicates of each other or of earlier cases are replaced the same way.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from botorch.acquisition import qUpperConfidenceBound
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler

from closedloop.planners.design import DesignSpace, sobol_design

Feasible = Callable[[torch.Tensor], torch.Tensor]  # (n x d) natural units -> (n,) bool


def propose_batch(model: Model, space: DesignSpace, q: int, *, seed: int, beta: float = 4.0,
                  num_restarts: int = 8, raw_samples: int = 256, mc_samples: int = 128,
                  feasible: Feasible | None = None, existing: torch.Tensor | None = None,
                  min_distance: float = 1e-3) -> torch.Tensor:
    """``q x d`` proposals in natural units, inside the bounds, feasible and mutually distinct.

    ``min_distance`` is measured in the unit cube; ``existing`` (n x d) are points already run.
    """
    if q < 1:
        raise ValueError(f"q must be at least 1, got {q}")
    torch.manual_seed(seed)
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
    acqf = qUpperConfidenceBound(model, beta=beta, sampler=sampler)
    x, _ = optimize_acqf(acqf, bounds=space.bounds(), q=q, num_restarts=num_restarts,
                         raw_samples=raw_samples, options={"seed": seed})
    x = x.detach().clamp(space.bounds()[0], space.bounds()[1])
    pool = sobol_design(space, 1024, seed=seed + 7919)
    if feasible is not None:
        pool = pool[feasible(pool)]
        if pool.shape[0] == 0:
            raise ValueError("no feasible point found in the design space (1024 Sobol samples)")
    taken = [] if existing is None else [space.to_unit(existing.to(torch.float64))]
    out = []
    for j in range(q):
        cand = x[j: j + 1]
        if not _acceptable(cand, space, feasible, taken, min_distance):
            cand = _repair(cand, pool, space, acqf, feasible, taken, min_distance)
        out.append(cand)
        taken.append(space.to_unit(cand))
    return torch.cat(out)


def _acceptable(cand: torch.Tensor, space: DesignSpace, feasible: Feasible | None,
                taken: list[torch.Tensor], min_distance: float) -> bool:
    if feasible is not None and not bool(feasible(cand)[0]):
        return False
    if taken:
        t = torch.cat(taken)
        if torch.cdist(space.to_unit(cand), t).min() < min_distance:
            return False
    return True


def _repair(cand: torch.Tensor, pool: torch.Tensor, space: DesignSpace, acqf: qUpperConfidenceBound,
            feasible: Feasible | None, taken: list[torch.Tensor], min_distance: float) -> torch.Tensor:
    """The pool point with the best single-point acquisition value, among those acceptable."""
    ok = torch.ones(pool.shape[0], dtype=torch.bool)
    if taken:
        ok &= torch.cdist(space.to_unit(pool), torch.cat(taken)).min(dim=1).values >= min_distance
    if not ok.any():
        raise ValueError("design space exhausted: every pool point duplicates an earlier case")
    with torch.no_grad():
        values = acqf(pool[ok].unsqueeze(1))
    return pool[ok][values.argmax()].unsqueeze(0)
