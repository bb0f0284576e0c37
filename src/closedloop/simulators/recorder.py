"""What a reference run keeps at its output times: the plane, the probes, the mass budget, snapshots.

The budget is M(t) = ∫c dV (in the domain), E(t) = ∫₀ᵗ∫S dV dt (emitted) and X(t) (exhausted, the
time integral of the boundary outflow). With E and X integrated by the same stages as c
(``physics.steppers``), E − M − X = 0 to round-off at every output.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch

from closedloop.physics.integrator import is_event
from closedloop.simulators.plane import PlaneReduction


class Recorder:
    """Series over the recorded times: ``plane()`` (T, nx, ny), ``probes()`` name → (T,), ``masses()``
    three (T,) series, ``snapshots`` t → the 3D field (nx, ny, nz) at the requested snapshot times.

    Values are kept on the run's device and moved to the CPU once, at the end.
    """

    def __init__(self, reduction: PlaneReduction, probes: dict[str, tuple[int, int, int]],
                 cell_volume: float, snapshot_times: Iterable[float], dtype: torch.dtype,
                 device: torch.device) -> None:
        self.reduction = dataclasses.replace(
            reduction, column_weights=reduction.column_weights.to(device=device, dtype=dtype),
            denominator=reduction.denominator.to(device=device, dtype=dtype), mask=reduction.mask.to(device))
        self.probe_cells = probes
        self.cell_volume = cell_volume
        self.snapshot_times = set(snapshot_times)
        self.dtype, self.device = dtype, device
        self.snapshots: dict[float, torch.Tensor] = {}
        self._rows: dict[str, list] = {"plane": [], "mass": [], "emitted": [], "exhausted": [],
                                       **{f"probe:{k}": [] for k in probes}}

    def record(self, t: float, c: torch.Tensor, emitted: float, exhausted: torch.Tensor) -> None:
        """Keep the outputs of field ``c`` (nx, ny, nz) at time ``t``, with the budget's E and X."""
        rows = self._rows
        rows["plane"].append(self.reduction.average(c))
        rows["mass"].append(c.sum() * self.cell_volume)
        rows["emitted"].append(emitted)
        rows["exhausted"].append(exhausted.clone())
        for name, idx in self.probe_cells.items():
            rows[f"probe:{name}"].append(c[idx])
        if is_event(t, self.snapshot_times):
            self.snapshots[t] = c.detach().cpu().clone()

    def _series(self, key: str) -> torch.Tensor:
        return torch.stack([torch.as_tensor(x, dtype=self.dtype, device=self.device) for x in self._rows[key]]).cpu()

    def plane(self) -> torch.Tensor:
        return torch.stack(self._rows["plane"]).cpu()

    def probes(self) -> dict[str, torch.Tensor]:
        return {name: self._series(f"probe:{name}") for name in self.probe_cells}

    def masses(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(M in domain, E emitted, X exhausted), each (T,)."""
        return self._series("mass"), self._series("emitted"), self._series("exhausted")
