"""What drives the plane model: band-averaged face velocities and source, batched over cases.

A source is given either as one density pattern switched on over a window (static sources), or
as a series of interval means (moving sources, or any emission that changes in time):

    S̄_n = (1/Δt) ∫_{t_n}^{t_n+Δt} S̄(t) dt,   n = 0 … N−1,

which the model holds constant over output interval n, so the mass emitted per interval is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from closedloop.surrogates.layers import LayerForcing


@dataclass
class Forcing:
    """Inputs of a batch of ``B`` scenarios on one plane grid ``(nx, ny)``.

    velocity: (u_x (B, nx+1, ny), u_y (B, nx, ny+1)) band-mean face velocities (m/s).
    source: (B, nx, ny) band-mean source density while the source is on (mass/s/m³); with a
        ``source_series`` its time mean (for display and scaling only).
    window: (B, 2) source on over [start, stop) in seconds (stop = inf for never).
    source_series: optional (B, N, nx, ny) interval-mean source densities S̄_n (emission schedule
        included); when given it replaces ``source`` and ``window`` in the physics.
    outflow: optional (B, nx, ny) rate (1/s) at which the steady flow leaves the band vertically,
        (max(w_top, 0) + max(−w_bottom, 0)) / h_band: where the band-mean flow converges, air (and
        what it carries) leaves through the band's top or bottom.
    layers: optional flow of the room below and above the band (surrogates/layers.py).
    fidelity: optional (B,) level s ∈ [0, 1] of each case's reference (top = 1; None: all top).
    """

    velocity: tuple[torch.Tensor, torch.Tensor]
    source: torch.Tensor
    window: torch.Tensor
    source_series: torch.Tensor | None = None
    outflow: torch.Tensor | None = None
    layers: LayerForcing | None = None
    fidelity: torch.Tensor | None = None

    def __post_init__(self) -> None:
        s = self.source_series
        if s is not None and (s.dim() != 4 or s.shape[0] != self.source.shape[0]
                              or s.shape[2:] != self.source.shape[1:]):
            raise ValueError(f"source_series: shape {tuple(s.shape)} does not match source "
                             f"{tuple(self.source.shape)} as (B, N, nx, ny)")

    @property
    def batch_size(self) -> int:
        return self.source.shape[0]

    def source_peak(self) -> torch.Tensor:
        """Per-case max S̄ over space (and intervals), shape (B,)."""
        if self.source_series is not None:
            return self.source_series.amax(dim=(1, 2, 3))
        return self.source.amax(dim=(1, 2))

    def source_pattern(self, n: int) -> torch.Tensor:
        """The source density the model sees during output interval ``n`` (for the closure)."""
        if self.source_series is not None:
            return self.source_series[:, min(n, self.source_series.shape[1] - 1)]
        return self.source

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Forcing:
        return self.map(lambda x: x.to(device=device, dtype=dtype))

    def select(self, index: torch.Tensor | list[int] | slice) -> Forcing:
        return self.map(lambda x: x[index])

    def map(self, fn) -> Forcing:
        """Apply ``fn`` to every tensor (the optional ones when present)."""
        opt = {name: None if getattr(self, name) is None else fn(getattr(self, name))
               for name in ("source_series", "outflow", "fidelity")}
        return Forcing(velocity=(fn(self.velocity[0]), fn(self.velocity[1])), source=fn(self.source),
                       window=fn(self.window), layers=None if self.layers is None else self.layers.map(fn), **opt)

    def as_series(self, n_steps: int, interval: float) -> Forcing:
        """The same forcing with the window folded into interval means (exact on-time fractions)."""
        if self.source_series is not None:
            return self
        t0 = torch.arange(n_steps, dtype=self.window.dtype, device=self.window.device) * interval
        start, stop = self.window[:, :1], self.window[:, 1:]
        on = (torch.minimum(t0 + interval, stop) - torch.maximum(t0, start)).clamp_min(0) / interval
        series = on.to(self.source.dtype)[:, :, None, None] * self.source[:, None]
        return Forcing(velocity=self.velocity, source=self.source, window=self.window, source_series=series,
                       outflow=self.outflow, layers=self.layers, fidelity=self.fidelity)

    @staticmethod
    def stack(items: list[Forcing]) -> Forcing:
        timed = [f.source_series is not None for f in items]
        if any(timed) and not all(timed):
            raise ValueError("source_series: mix of time-dependent and windowed forcings; "
                             "convert with Forcing.as_series(n_steps, interval) first")
        series = torch.cat([f.source_series for f in items]) if all(timed) else None  # type: ignore[misc]
        outflows = [f.outflow for f in items]
        outflow = torch.cat(outflows) if all(o is not None for o in outflows) else None  # type: ignore[misc]
        stacks = [f.layers for f in items]
        if any(x is None for x in stacks) and not all(x is None for x in stacks):
            raise ValueError("layers: mix of forcings with and without the room layers")
        layers = None if stacks[0] is None else LayerForcing.cat(stacks)  # type: ignore[arg-type]
        levels = [f.fidelity for f in items]
        fidelity = torch.cat(levels) if all(s is not None for s in levels) else None  # type: ignore[misc]
        return Forcing(velocity=(torch.cat([f.velocity[0] for f in items]),
                                 torch.cat([f.velocity[1] for f in items])),
                       source=torch.cat([f.source for f in items]),
                       window=torch.cat([f.window for f in items]), source_series=series, outflow=outflow,
                       layers=layers, fidelity=fidelity)
