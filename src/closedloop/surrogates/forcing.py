"""What drives the plane model: band-averaged face velocities and source, batched over cases."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Forcing:
    """Inputs of a batch of ``B`` scenarios on one plane grid ``(nx, ny)``.

    velocity: (u_x (B, nx+1, ny), u_y (B, nx, ny+1)) band-mean face velocities (m/s).
    source: (B, nx, ny) band-mean source density while the source is on (mass/s/m³).
    window: (B, 2) source on over [start, stop) in seconds (stop = inf for never).
    """

    velocity: tuple[torch.Tensor, torch.Tensor]
    source: torch.Tensor
    window: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.source.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Forcing:
        return Forcing(velocity=tuple(u.to(device=device, dtype=dtype) for u in self.velocity),  # type: ignore[arg-type]
                       source=self.source.to(device=device, dtype=dtype),
                       window=self.window.to(device=device, dtype=dtype))

    def select(self, index: torch.Tensor | list[int] | slice) -> Forcing:
        return Forcing(velocity=(self.velocity[0][index], self.velocity[1][index]),
                       source=self.source[index], window=self.window[index])

    @staticmethod
    def stack(items: list[Forcing]) -> Forcing:
        return Forcing(velocity=(torch.cat([f.velocity[0] for f in items]),
                                 torch.cat([f.velocity[1] for f in items])),
                       source=torch.cat([f.source for f in items]),
                       window=torch.cat([f.window for f in items]))
