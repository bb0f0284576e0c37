"""What a reference simulation will cost, estimated from the scenario before anything is allocated.

    memory ≈ 64 MiB + cells × b,   b = 400 B (potential flow) or 2000 B (Navier–Stokes), float64
                                   (half in float32)
    steps  ≈ horizon / Δt,  Δt = C safety / (2|u|/min_a h_a + Σ_a 2K/h_a²), |u| the fastest inlet,
             C the scheme's SSP coefficient (``Numerics.stepper``)
    time   ≈ cells × steps × s/2 × 3·10⁻⁷ s (s stages a step: 2 for Heun, 1 for Euler), plus the steady flow

b is the resident memory per cell measured on this project's 2-core CPU machine (room.toml at
11,520 – 737,280 cells: 300 B/cell for the transport on a potential flow; hall.toml, Navier–Stokes with
Anderson acceleration: about 1,500 B/cell), rounded up; the time per cell-step was 1.5–3.6·10⁻⁷ s.
Δt is an estimate (the steady flow's fastest face is not known yet): its purpose is the order of
magnitude in a refusal message, not a promise. A simulation whose memory is over the limit
(``max_memory_gb``, default half of this machine's memory; or ``max_cells``) is refused with
:class:`ScenarioTooLarge` before any allocation: a permanent error, never retried.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from closedloop.simulators.scenario import Scenario

BASE_BYTES = 64 * 2 ** 20
BYTES_PER_CELL = {"potential": 400, "navier_stokes": 2000}  # float64
SECONDS_PER_CELL_STEP = 3e-7  # a two-stage step (Heun), TVD, one CPU core


class ScenarioTooLarge(ValueError):
    """A scenario whose simulation cannot fit in the memory allowed; the message has the numbers."""


@dataclass(frozen=True)
class SimulationEstimate:
    cells: int
    shape: tuple[int, int, int]
    memory_bytes: int
    steps: int
    seconds: float

    def describe(self) -> str:
        nx, ny, nz = self.shape
        return (f"{self.cells:,} cells ({nx} × {ny} × {nz}) need about {self.memory_bytes / 2 ** 30:.3g} GiB "
                f"and about {self.steps:,} time steps (≈ {_duration(self.seconds)} of transport)")


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def machine_memory_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_limit(max_memory_gb: float | None, field: str) -> tuple[int, str]:
    """(bytes allowed, what sets it): ``max_memory_gb`` as given in the config ``field``, or by
    default half of this machine's memory."""
    if max_memory_gb is None:
        return machine_memory_bytes() // 2, f"half of this machine's memory; set {field}"
    return int(max_memory_gb * 2 ** 30), field


def estimate(scenario: Scenario, dtype: torch.dtype = torch.float64) -> SimulationEstimate:
    """Memory and time of ``simulate(scenario)``, from the scenario alone (see the module docstring)."""
    shape = scenario.room.shape
    cells = math.prod(shape)
    per_cell = BYTES_PER_CELL[scenario.flow.model] * (torch.finfo(dtype).bits / 64)
    speed = max((i.speed for i in scenario.inlets), default=0.0)
    k = scenario.eddy_diffusivity
    tvd = 2.0 if scenario.numerics.advection == "tvd" else 1.0
    rate = tvd * speed / min(scenario.room.spacing) + sum(2 * k / h ** 2 for h in scenario.room.spacing)
    stepper = scenario.numerics.stepper()
    steps = math.ceil(scenario.time.horizon * rate / (scenario.numerics.safety * stepper.ssp_coefficient)) if rate > 0 else 1
    stages = stepper.stages
    return SimulationEstimate(cells=cells, shape=shape, memory_bytes=int(BASE_BYTES + cells * per_cell), steps=steps,
                              seconds=cells * steps * SECONDS_PER_CELL_STEP * stages / 2)


def check_size(scenario: Scenario, max_memory_gb: float | None = None, max_cells: int | None = None,
               dtype: torch.dtype = torch.float64) -> SimulationEstimate:
    """The estimate, or :class:`ScenarioTooLarge` naming the numbers and the limit that refused it."""
    est = estimate(scenario, dtype)
    if max_cells is not None and est.cells > max_cells:
        raise ScenarioTooLarge(f"room.cell_size: {est.describe()}; over simulation.max_cells = {max_cells:,}")
    limit, source = memory_limit(max_memory_gb, "simulation.max_memory_gb")
    if est.memory_bytes > limit:
        raise ScenarioTooLarge(f"room.cell_size: {est.describe()}; over the limit of {limit / 2 ** 30:.3g} GiB "
                               f"({source}): use larger cells or a smaller room")
    return est
