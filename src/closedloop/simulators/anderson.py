"""Anderson acceleration of a fixed-point iteration on tuples of tensors (the steady flow solvers)."""
from __future__ import annotations

import math

import torch

# Tikhonov term of the normal equations, relative to the Gram matrix's largest diagonal entry: caps
# their condition near 1/TIKHONOV, so γ carries a relative rounding error of at most ≈ ε/TIKHONOV.
TIKHONOV = 1e-10


class Anderson:
    """Anderson acceleration (type II) of a fixed-point iteration x ← G(x) on face-velocity tuples.

    With f = G(x) − x and the last ``depth`` differences ΔF, ΔG, it returns
    G(x) − ΔG γ, γ = argmin ‖f − ΔF γ‖₂ (normal equations, Tikhonov-regularised): an affine
    combination of recent G outputs, so it keeps their divergence-free, wall-respecting
    structure. Restarts when the residual jumps. Vectors stay split by component and the Gram
    matrix grows one column at a time from element-wise products: no operation is larger than
    a velocity component, so none goes multi-threaded where the solver's others do not.
    """

    def __init__(self, depth: int, restart_growth: float = 10.0):
        self.depth = depth
        self.restart_growth = restart_growth
        self.reset()

    def reset(self) -> None:
        self.df: list[list[torch.Tensor]] = []
        self.dg: list[list[torch.Tensor]] = []
        self.gram: list[list[torch.Tensor]] = []
        self.prev: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self.best = math.inf

    @staticmethod
    def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        return sum((x * y).sum() for x, y in zip(a, b))  # type: ignore[return-value]

    def __call__(self, x: tuple[torch.Tensor, ...], g: tuple[torch.Tensor, ...],
                 carry: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(next iterate, ``carry`` mixed alike): ``carry`` rides along with G(x), e.g. the
        projection potential, whose mixture is the warm start for the next projection."""
        f = [gi - xi for gi, xi in zip(g, x)]
        gc = [*g, carry]
        norm = self._dot(f, f).sqrt().item()
        if norm > self.restart_growth * self.best:
            self.reset()
        self.best = min(self.best, norm)
        if self.prev is not None:
            d = [fi - pi for fi, pi in zip(f, self.prev[0])]
            if len(self.df) == self.depth:
                self.df.pop(0)
                self.dg.pop(0)
                self.gram = [row[1:] for row in self.gram[1:]]
            dots = [self._dot(d, other) for other in self.df] + [self._dot(d, d)]
            for row, v in zip(self.gram, dots):
                row.append(v)
            self.gram.append(dots)
            self.df.append(d)
            self.dg.append([a - b for a, b in zip(gc, self.prev[1])])
        self.prev = (f, gc)
        if not self.df:
            return g, carry
        m = len(self.df)
        gram = torch.stack([torch.stack(row) for row in self.gram])
        gram = gram + TIKHONOV * gram.diagonal().max() * torch.eye(m, dtype=gram.dtype, device=gram.device)
        rhs = torch.stack([self._dot(d, f) for d in self.df])
        gamma = torch.linalg.solve(gram, rhs)
        out = list(gc)
        for k in range(m):
            out = [o - gamma[k] * dgk for o, dgk in zip(out, self.dg[k])]
        return tuple(out[:-1]), out[-1]
