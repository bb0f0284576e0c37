"""Design spaces (named box bounds) and scrambled Sobol designs over them."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.quasirandom import SobolEngine


@dataclass(frozen=True)
class DesignSpace:
    """A box: parameter ``names`` with ``lower`` < ``upper`` bounds, in natural units."""

    names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("design space needs at least one parameter")
        if not len(self.names) == len(self.lower) == len(self.upper):
            raise ValueError("names, lower and upper must have equal lengths")
        for n, lo, hi in zip(self.names, self.lower, self.upper):
            if not lo < hi:
                raise ValueError(f"parameter {n!r}: lower bound {lo} must be below upper bound {hi}")

    @property
    def dim(self) -> int:
        return len(self.names)

    def bounds(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """BoTorch bounds, shape ``2 x d``."""
        return torch.tensor([self.lower, self.upper], dtype=dtype)

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        b = self.bounds(u.dtype)
        return b[0] + u * (b[1] - b[0])

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bounds(x.dtype)
        return (x - b[0]) / (b[1] - b[0])

    def as_dicts(self, x: torch.Tensor) -> list[dict[str, float]]:
        return [dict(zip(self.names, map(float, row))) for row in x]

    def as_tensor(self, rows: Sequence[dict[str, float]]) -> torch.Tensor:
        return torch.tensor([[float(r[n]) for n in self.names] for r in rows], dtype=torch.float64)

    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
        b = self.bounds(x.dtype)
        return ((x >= b[0] - tol) & (x <= b[1] + tol)).all(dim=-1)


def sobol_design(space: DesignSpace, n: int, seed: int, skip: int = 0) -> torch.Tensor:
    """Points ``skip .. skip+n-1`` of a scrambled Sobol sequence, ``n x d`` in natural units.

    Continuing with ``skip`` = number already drawn extends the same low-discrepancy sequence.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if n == 0:
        return torch.empty(0, space.dim, dtype=torch.float64)
    engine = SobolEngine(space.dim, scramble=True, seed=seed)
    if skip:
        engine.fast_forward(skip)
    return space.from_unit(engine.draw(n, dtype=torch.float64))
