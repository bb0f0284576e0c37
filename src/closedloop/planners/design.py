"""Design spaces (named box bounds, some axes integer or categorical) and Sobol/random designs.

A categorical parameter with k choices is the integer axis 0 … k−1 (its index); the caller maps the
index to the choice. Optimisers work on the continuous relaxation and :meth:`DesignSpace.snap`
rounds integer axes to the nearest integer, so every returned point lies on the lattice.

:meth:`DesignSpace.quantize` rounds continuous axes to the space's resolution (a fraction of each
axis's range) as well: a campaign's case id hashes the scenario's numbers, and an optimiser run on
another CPU returns the "same" point with other last bits; on the resolution grid both are one case.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.quasirandom import SobolEngine


@dataclass(frozen=True)
class DesignSpace:
    """A box: parameter ``names`` with ``lower`` < ``upper`` bounds, in natural units.

    ``integer[i]``: axis i takes whole values only (integer and categorical parameters).
    ``resolution``: the step of a continuous axis as a fraction of its range (``quantize``).
    """

    names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    integer: tuple[bool, ...] | None = None
    resolution: float = 1e-6

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("design space needs at least one parameter")
        if not len(self.names) == len(self.lower) == len(self.upper):
            raise ValueError("names, lower and upper must have equal lengths")
        for n, lo, hi in zip(self.names, self.lower, self.upper):
            if not lo < hi:
                raise ValueError(f"parameter {n!r}: lower bound {lo} must be below upper bound {hi}")
        if not 0 < self.resolution <= 1:
            raise ValueError(f"resolution must lie in (0, 1], got {self.resolution}")
        if self.integer is not None:
            if len(self.integer) != len(self.names):
                raise ValueError("integer must have one flag per parameter")
            for n, lo, hi, is_int in zip(self.names, self.lower, self.upper, self.integer):
                if is_int and (lo != round(lo) or hi != round(hi)):
                    raise ValueError(f"parameter {n!r}: an integer parameter needs whole bounds, got {lo}, {hi}")

    @property
    def integer_mask(self) -> torch.Tensor:
        """(d,) bool: which axes are integer."""
        flags = self.integer if self.integer is not None else (False,) * len(self.names)
        return torch.tensor(flags, dtype=torch.bool)

    def snap(self, x: torch.Tensor) -> torch.Tensor:
        """x (… x d) clamped into the box, integer axes rounded to the nearest whole value."""
        b = self.bounds(x.dtype)
        x = torch.maximum(torch.minimum(x, b[1]), b[0])
        mask = self.integer_mask
        return torch.where(mask, x.round(), x) if mask.any() else x

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """x (… x d, float64) on the resolution grid: x_i = l_i + k·δ_i, k = round((x_i − l_i)/δ_i),
        δ_i = ``resolution``·(u_i − l_i), clamped into the box; integer axes as :meth:`snap`.

        Every step is one correctly rounded IEEE operation, so equal k give equal bits on any CPU;
        two inputs that differ by ε·|x| map to different k only within ε·|x| of a midpoint
        (probability ≈ 2ε|x|/δ ≈ 1e-10 per axis at the default resolution).
        """
        if x.dtype != torch.float64:
            raise ValueError(f"quantize: design points are float64, got {x.dtype}")
        lo, hi = self.bounds(x.dtype)
        step = (hi - lo) * self.resolution
        grid = lo + torch.round((x - lo) / step) * step
        return self.snap(torch.where(self.integer_mask, x, grid))

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
        """Inside the box and, on integer axes, whole."""
        b = self.bounds(x.dtype)
        inside = ((x >= b[0] - tol) & (x <= b[1] + tol)).all(dim=-1)
        mask = self.integer_mask
        if mask.any():
            inside &= ((x[..., mask] - x[..., mask].round()).abs() <= tol).all(dim=-1)
        return inside


def round_seed(seed: int, round_index: int) -> int:
    """The seed of round ``round_index``'s random choices in a campaign or a steering search seeded by
    ``seed``: ``seed·1000 + round`` (distinct for every round of up to 1000, reproducible)."""
    return seed * 1000 + round_index


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
    return points_from_unit(space, engine.draw(n, dtype=torch.float64))


def points_from_unit(space: DesignSpace, u: torch.Tensor) -> torch.Tensor:
    """Unit-cube samples to design points; an integer axis is widened by half a step each side
    before rounding, so every whole value (end points included) gets an equal share."""
    lo, hi = space.bounds(u.dtype)
    mask = space.integer_mask
    lo = torch.where(mask, lo - 0.5 + 1e-9, lo)
    hi = torch.where(mask, hi + 0.5 - 1e-9, hi)
    return space.snap(lo + u * (hi - lo))


def random_design(space: DesignSpace, n: int, seed: int) -> torch.Tensor:
    """``n x d`` independent uniform points (integer axes: uniform over the whole values)."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    g = torch.Generator().manual_seed(seed)
    return points_from_unit(space, torch.rand(n, space.dim, generator=g, dtype=torch.float64))
