"""Matrix-free preconditioned conjugate gradients for symmetric positive (semi)definite systems."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SolveInfo:
    iterations: int
    residual: float
    converged: bool


def conjugate_gradient(apply_a: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       inverse_diagonal: torch.Tensor | None = None, rtol: float = 1e-10,
                       max_iter: int = 10_000) -> tuple[torch.Tensor, SolveInfo]:
    """Solve A x = b by Jacobi-preconditioned CG (Hestenes–Stiefel).

    A singular but consistent system (a pure-Neumann Poisson problem, b ⟂ null space) converges
    to a solution in the range of A. Stops when ‖r‖ ≤ rtol·‖b‖, or on breakdown (p·Ap ≤ 0, an
    inconsistent singular system), returning the last finite iterate with ``converged=False``.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    m = inverse_diagonal if inverse_diagonal is not None else torch.ones_like(b)
    z = m * r
    p = z.clone()
    rz = torch.sum(r * z)
    b_norm = torch.linalg.vector_norm(b).item()
    target = rtol * max(b_norm, torch.finfo(b.dtype).tiny)
    res = torch.linalg.vector_norm(r).item()
    it = 0
    while res > target and it < max_iter:
        ap = apply_a(p)
        pap = torch.sum(p * ap)
        if not torch.isfinite(pap) or pap.item() <= torch.finfo(b.dtype).tiny:
            break  # breakdown: A is singular along p (inconsistent system); keep the last iterate
        alpha = rz / pap
        x = x + alpha * p
        r = r - alpha * ap
        z = m * r
        rz_new = torch.sum(r * z)
        p = z + (rz_new / rz) * p
        rz = rz_new
        res = torch.linalg.vector_norm(r).item()
        it += 1
    return x, SolveInfo(iterations=it, residual=res / max(b_norm, torch.finfo(b.dtype).tiny),
                        converged=res <= target)
