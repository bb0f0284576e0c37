"""The room above and below the band: two lumped layers that return what leaves the band.

The band-mean equation loses scalar where the flow leaves the band vertically; in the room that
air is carried on by the flow above and below the band and comes back into the band elsewhere.
A plane-only model sees clean air return, so its far field stays too clean. With ``room_layers``
the surrogate carries two more 2D fields, the layer means c_lo (floor → band) and c_hi
(band → ceiling), each advected and diffused by its own layer-mean flow, and the three layers
exchange through the band's bottom (face 1) and top (face 2) by upwind vertical fluxes and a
turbulent conductance g = K_z / Δz between layer centres:

    F_f = w_f⁻ c_lo                                   (floor, face 0; inflow brings clean air)
    F_1 = w_1⁺ c_lo + w_1⁻ c̄ − g_1 (c̄ − c_lo)        (band bottom)
    F_2 = w_2⁺ c̄ + w_2⁻ c_hi − g_2 (c_hi − c̄)        (band top)
    F_c = w_c⁺ c_hi                                    (ceiling, face 3: exhausts; inlets bring 0)

    ∂c_lo/∂t += (F_f − F_1)/h_lo,   ∂c̄/∂t += (F_1 − F_2)/h_b,   ∂c_hi/∂t += (F_2 − F_c)/h_hi

(w positive upward, w⁺ = max(w, 0), w⁻ = min(w, 0)). With layer-mean face velocities taken as the
flux per unit layer height, h·∇·ū + w_top − w_bottom = 0 holds column by column wherever the 3D
flow is divergence-free, so a uniform field stays uniform away from inlets: this is the 3D finite
volume scheme lumped to three cells in the vertical. Sources are taken to lie in the band.

The exchange is stiff (jets cross the band at ~1 m/s over 0.5 m), so the model steps it
implicitly, c ← (I − Δt A)⁻¹ c per column (A the 3×3 tridiagonal matrix of the fluxes above),
after an explicit horizontal step: I − Δt A is an M-matrix, so the update is positive and
conserves mass, and since A·1 = ∇·ū per layer, the split step keeps a uniform field uniform.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch


@dataclass
class LayerForcing:
    """The layers' inputs for a batch of ``B`` scenarios on the plane grid ``(nx, ny)``.

    ux (B, 2, nx+1, ny), uy (B, 2, nx, ny+1): layer-mean face velocities of [below, above] (m/s).
    dx, dy: the same shapes, layer-mean face diffusivities (m²/s), zero on closed faces.
    w (B, 4, nx, ny): vertical velocity (m/s, + up) at the floor, band bottom, band top, ceiling.
    conductance (B, 2, nx, ny): K_z/Δz across the band's bottom and top (m/s).
    mask (B, 2, nx, ny): columns with fluid in each layer (0/1).
    """

    ux: torch.Tensor
    uy: torch.Tensor
    dx: torch.Tensor
    dy: torch.Tensor
    w: torch.Tensor
    conductance: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        b, _, nx, ny = self.mask.shape
        expected = {"ux": (b, 2, nx + 1, ny), "uy": (b, 2, nx, ny + 1), "dx": (b, 2, nx + 1, ny),
                    "dy": (b, 2, nx, ny + 1), "w": (b, 4, nx, ny), "conductance": (b, 2, nx, ny)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"layers.{name}: shape {got}, expected {shape} for mask {tuple(self.mask.shape)}")

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> LayerForcing:
        return LayerForcing(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    @staticmethod
    def cat(items: list[LayerForcing]) -> LayerForcing:
        return LayerForcing(**{f.name: torch.cat([getattr(i, f.name) for i in items]) for f in fields(LayerForcing)})

    def layer(self, j: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """(velocity, diffusivities, mask) of layer ``j`` (0 below, 1 above), batched."""
        return (self.ux[:, j], self.uy[:, j]), (self.dx[:, j], self.dy[:, j]), self.mask[:, j]


def vertical_exchange(lo: torch.Tensor, band: torch.Tensor, hi: torch.Tensor, layers: LayerForcing,
                      heights: tuple[float, float, float]
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rates of change (1/s × concentration) of c_lo, c̄, c_hi from the fluxes F_f, F_1, F_2, F_c."""
    w, g = layers.w.to(band.dtype), layers.conductance.to(band.dtype)
    pos, neg = w.clamp_min(0), w.clamp_max(0)
    f_floor = neg[:, 0] * lo
    f_bottom = pos[:, 1] * lo + neg[:, 1] * band - g[:, 0] * (band - lo)
    f_top = pos[:, 2] * band + neg[:, 2] * hi - g[:, 1] * (hi - band)
    f_ceiling = pos[:, 3] * hi
    h_lo, h_b, h_hi = heights
    return (f_floor - f_bottom) / h_lo, (f_bottom - f_top) / h_b, (f_top - f_ceiling) / h_hi


def exchange_matrix(layers: LayerForcing, heights: tuple[float, float, float], dt: float,
                    dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """The entries of I − Δt A per column: diagonals a11, a22, a33 and the off-diagonals' magnitudes
    a12, a21, a23, a32 (every off-diagonal entry of I − Δt A is ≤ 0)."""
    w, g = layers.w.to(dtype), layers.conductance.to(dtype)
    pos, neg = w.clamp_min(0), (-w).clamp_min(0)
    h_lo, h_b, h_hi = heights
    a11 = 1 + dt * (neg[:, 0] + pos[:, 1] + g[:, 0]) / h_lo
    a12 = dt * (neg[:, 1] + g[:, 0]) / h_lo
    a21 = dt * (pos[:, 1] + g[:, 0]) / h_b
    a22 = 1 + dt * (neg[:, 1] + g[:, 0] + pos[:, 2] + g[:, 1]) / h_b
    a23 = dt * (neg[:, 2] + g[:, 1]) / h_b
    a32 = dt * (pos[:, 2] + g[:, 1]) / h_hi
    a33 = 1 + dt * (neg[:, 2] + g[:, 1] + pos[:, 3]) / h_hi
    # eliminated once: band = (c̄ + r_lo c_lo + r_hi c_hi) / pivot, then lo and hi back-substituted
    r_lo, r_hi = a21 / a11, a23 / a33
    pivot = a22 - r_lo * a12 - r_hi * a32
    return r_lo, r_hi, pivot, a11, a12, a33, a32


def solve_exchange(lo: torch.Tensor, band: torch.Tensor, hi: torch.Tensor, matrix: tuple[torch.Tensor, ...]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve (I − Δt A) x = c per column with the factors of ``exchange_matrix``."""
    r_lo, r_hi, pivot, a11, a12, a33, a32 = matrix
    new_band = (band + r_lo * lo + r_hi * hi) / pivot
    return (lo + a12 * new_band) / a11, new_band, (hi + a32 * new_band) / a33


def implicit_exchange(lo: torch.Tensor, band: torch.Tensor, hi: torch.Tensor, layers: LayerForcing,
                      heights: tuple[float, float, float], dt: float
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One backward-Euler step of the vertical exchange alone: solve (I − Δt A) x = c per column.

    The 3×3 tridiagonal system is eliminated in closed form (b from the middle row after
    substituting lo and hi); every off-diagonal entry is ≤ 0 and the diagonal dominates, so the
    solution is ≥ 0 for c ≥ 0.
    """
    return solve_exchange(lo, band, hi, exchange_matrix(layers, heights, dt, band.dtype))
