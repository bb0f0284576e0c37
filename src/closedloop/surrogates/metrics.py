"""Error measures between predicted and reference plane series."""
from __future__ import annotations

import torch


def relative_l2(pred: torch.Tensor, ref: torch.Tensor, floor: float = 1e-30) -> torch.Tensor:
    """‖pred − ref‖₂ / ‖ref‖₂ over time and space, per case: (B, T, nx, ny) → (B,).

    Pass series without the t = 0 row when it is the shared zero initial state.
    """
    dims = tuple(range(1, pred.ndim))
    num = torch.linalg.vector_norm(pred - ref, dim=dims)
    den = torch.linalg.vector_norm(ref, dim=dims).clamp_min(floor)
    return num / den


def relative_l2_per_time(pred: torch.Tensor, ref: torch.Tensor, floor: float = 1e-30) -> torch.Tensor:
    """‖pred_t − ref_t‖ / ‖ref_t‖ for each time: (B, T, nx, ny) → (B, T)."""
    num = torch.linalg.vector_norm(pred - ref, dim=(-2, -1))
    den = torch.linalg.vector_norm(ref, dim=(-2, -1)).clamp_min(floor)
    return num / den
