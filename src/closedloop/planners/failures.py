"""Avoiding regions where simulations failed: an exclusion ball around every failed point.

A failed or diverged simulation says nothing about the surrogate's error there (it is left out of
the error GP) but warns that its neighbourhood may fail again. A candidate x is refused when
min_i ‖u(x) − u(x_i^fail)‖₂ < r, with u the map to the unit cube and r the ``radius``; combined
with the scenario's own feasibility rule (a source inside a solid), it is the ``feasible``
callable every strategy filters its proposals through.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from closedloop.planners.design import DesignSpace

Feasible = Callable[[torch.Tensor], torch.Tensor]


def clear_of_failures(space: DesignSpace, failed: torch.Tensor | None, radius: float) -> Feasible:
    """(n x d) → (n,) bool: True where a point lies at least ``radius`` (unit cube) from every failure."""
    if radius < 0:
        raise ValueError(f"failure radius must be non-negative, got {radius}")
    if failed is None or len(failed) == 0 or radius == 0:
        return lambda x: torch.ones(x.shape[0], dtype=torch.bool)
    if failed.ndim != 2 or failed.shape[1] != space.dim:
        raise ValueError(f"failed: expected n x {space.dim} points, got {tuple(failed.shape)}")
    centres = space.to_unit(failed.to(torch.float64))

    def ok(x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(space.to_unit(x.to(torch.float64)), centres).min(dim=1).values >= radius

    return ok


def both(first: Feasible | None, second: Feasible | None) -> Feasible | None:
    """The conjunction of two feasibility rules (None means: everything is feasible)."""
    if first is None or second is None:
        return first or second
    return lambda x: first(x) & second(x)
