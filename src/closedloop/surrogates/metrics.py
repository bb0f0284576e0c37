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


def mse_per_time(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over (fluid) cells for each time: (B, T, nx, ny) → (B, T)."""
    sq = (pred - ref) ** 2
    if mask is None:
        return sq.mean(dim=(-2, -1))
    m = mask.to(sq.dtype)
    return (sq * m).sum(dim=(-2, -1)) / m.sum()


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share the mean rank) along the last dimension, 0-based."""
    order = torch.argsort(x, dim=-1, stable=True)
    ranks = torch.empty_like(x)
    ar = torch.arange(x.shape[-1], dtype=x.dtype, device=x.device).expand_as(x)
    ranks.scatter_(-1, order, ar)
    out = ranks.clone()
    for b in range(x.shape[0]):  # resolve ties (exact duplicates, e.g. zeros far from a plume)
        vals, inverse, counts = torch.unique(x[b], return_inverse=True, return_counts=True)
        if (counts > 1).any():
            sums = torch.zeros_like(vals).scatter_add_(0, inverse, ranks[b])
            out[b] = (sums / counts.to(x.dtype))[inverse]
    return out


def spearman(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Spearman rank correlation of two plane fields over (fluid) cells: (B, nx, ny) → (B,).

    ρ = Pearson correlation of the average ranks (ties shared), as scipy.stats.spearmanr.
    """
    p, r = pred.flatten(1), ref.flatten(1)
    if mask is not None:
        keep = mask.flatten().bool()
        p, r = p[:, keep], r[:, keep]
    rp, rr = _ranks(p), _ranks(r)
    rp = rp - rp.mean(dim=1, keepdim=True)
    rr = rr - rr.mean(dim=1, keepdim=True)
    return (rp * rr).sum(1) / (rp.norm(dim=1) * rr.norm(dim=1)).clamp_min(1e-300)


def mass_error(pred: torch.Tensor, ref: torch.Tensor, cell_area: float = 1.0) -> torch.Tensor:
    """Relative error of the plane's integral Σ c·A per time: (B, T, nx, ny) → (B, T)."""
    mp = pred.sum(dim=(-2, -1)) * cell_area
    mr = ref.sum(dim=(-2, -1)) * cell_area
    return (mp - mr).abs() / mr.abs().clamp_min(1e-300)


def peak_location_error(pred: torch.Tensor, ref: torch.Tensor, spacing: tuple[float, float]) -> torch.Tensor:
    """Distance (m) between the cells holding the maximum of each field: (B, nx, ny) → (B,)."""
    ny = pred.shape[-1]
    ip, ir = pred.flatten(1).argmax(1), ref.flatten(1).argmax(1)
    dx = (ip // ny - ir // ny).to(torch.float64) * spacing[0]
    dy = (ip % ny - ir % ny).to(torch.float64) * spacing[1]
    return torch.sqrt(dx ** 2 + dy ** 2)
