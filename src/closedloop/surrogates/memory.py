"""What training the surrogate will hold in memory, estimated before it starts.

Truncated BPTT keeps the graph of one segment: ``S = min(tbptt_steps, n_steps)`` output intervals
of ``K`` explicit physics substeps each, for the ``B`` cases of a mini-batch on a plane of ``P``
cells; the cases' series and the closure's state are held per case and cell:

    memory ≈ 82 MiB + 117 B · B·S·K·P + 13.4 kB · B·P        (float64)

The coefficients are a least-squares fit to the peak resident memory of one training epoch of the
default model (hybrid, ConvGRU closure, 8 hidden channels) on the room at 240 and 960 plane cells,
B = 2 and 8, S = 2 and 8 (K = 5 and 17), measured on this project's CPU machine: every point within
6 % of its measurement, and a point outside the fit (6 cases × 6 intervals at 960 cells) 10 % above
its measurement (tests/surrogates/test_surrogates_memory.py): an estimate on the safe side. Other
variants are estimated with the same formula (their closures differ, so treat it as the order of
magnitude). Time per step is not estimated: on these sizes it is
dominated by fixed costs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from closedloop.surrogates.forcing import Forcing
from closedloop.surrogates.model import HybridSurrogate

BASE_BYTES = 82 * 2 ** 20
BYTES_PER_GRAPH_CELL = 117.0  # per case, output interval of the segment, substep and plane cell
BYTES_PER_CASE_CELL = 13_400.0  # per case and plane cell


class TrainingTooLarge(ValueError):
    """Training whose estimated memory is over the limit; the message says the numbers and the fix."""


@dataclass(frozen=True)
class TrainingEstimate:
    batch: int  # cases per optimiser step
    segment: int  # output intervals in one TBPTT graph
    substeps: int
    plane_cells: int
    memory_bytes: int

    def describe(self) -> str:
        return (f"{self.batch} cases at once × {self.segment} output intervals × {self.substeps} substeps on a "
                f"{self.plane_cells:,}-cell plane need about {self.memory_bytes / 2 ** 30:.3g} GiB")


def training_memory(batch: int, segment: int, substeps: int, plane_cells: int) -> int:
    """Bytes of one training step by the formula of the module docstring."""
    return int(BASE_BYTES + batch * plane_cells * (BYTES_PER_GRAPH_CELL * segment * substeps + BYTES_PER_CASE_CELL))


def estimate_training(model: HybridSurrogate, forcing: Forcing, n_steps: int, tbptt_steps: int,
                      batch_size: int | None) -> TrainingEstimate:
    """The estimate for training ``model`` on ``forcing`` (its substeps at the current weights)."""
    batch = min(batch_size or forcing.batch_size, forcing.batch_size)
    segment = min(tbptt_steps, n_steps)
    k = max(model.substeps(forcing), 1)
    cells = math.prod(model.spec.shape)
    return TrainingEstimate(batch, segment, k, cells, training_memory(batch, segment, k, cells))


def check_training(estimate: TrainingEstimate, limit_bytes: int, limit_name: str) -> TrainingEstimate:
    """The estimate, or :class:`TrainingTooLarge` saying how many cases at once would fit."""
    if estimate.memory_bytes <= limit_bytes:
        return estimate
    fits = [b for b in range(estimate.batch - 1, 0, -1)
            if training_memory(b, estimate.segment, estimate.substeps, estimate.plane_cells) <= limit_bytes]
    fix = (f"set surrogate.batch_size = {fits[0]} or less" if fits else
           "even one case at a time does not fit: lower surrogate.tbptt_steps or use a coarser plane")
    raise TrainingTooLarge(f"surrogate.batch_size: {estimate.describe()}; over the limit of "
                           f"{limit_bytes / 2 ** 30:.3g} GiB ({limit_name}): {fix}")
