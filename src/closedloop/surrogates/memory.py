"""What training the surrogate will hold in memory, estimated before it starts; the batch it can afford.

Truncated BPTT keeps the graph of one segment: ``S = min(tbptt_steps, n_steps)`` output intervals
for each of the ``B`` cases of a mini-batch. What autograd saves for one case over one output
interval, ``G`` bytes (its ``K`` physics substeps and the closure), is counted on the model and
forcing themselves (``graph_bytes``: one interval of one case under ``saved_tensors_hooks``, the
distinct storages), so every variant (room layers, TVD, multiplicative closure) is estimated by
what it really saves:

    memory ≈ 82 MiB + 4 · B · S · G        (float64)

The factor 4 (the saved activations, their gradients during the backward pass, the allocator's
slack over a curriculum of growing rollouts) is a fit to the peak resident memory added by training,
measured in fresh processes on this project's CPU machine: the hall (configs/hall.toml's model,
G ≈ 11 MB, B = 4 and 8, S = 6, 4 and 16 epochs) +2 % to +20 %; the room at 240 cells (B = 8, 16,
S = 4) −3 % to 0 %; the room at 960 cells (B = 2, 6, S = 6) +29 % to +44 %: an estimate on the
safe side (tests/surrogates/test_surrogates_memory.py). The cases' series (B × T × P × 8 bytes)
are small beside the graph and not counted. Time per step is not estimated.

The mini-batch is chosen from a memory budget (``batch_for_budget``): the fewest mini-batches of
equal size whose estimate fits, B = ⌈N / ⌈N / B_max⌉⌉ with B_max the largest batch that fits
(all N cases at once when they fit: small campaigns train full-batch). The budget
(``training_budget``) is ``surrogate.training_memory_gb`` when given, else 2 GiB (or a quarter of
this machine's memory if less) for training on the CPU, and a quarter of the GPU's memory on CUDA.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from closedloop.simulators.budget import machine_memory_bytes
from closedloop.surrogates.forcing import Forcing
from closedloop.surrogates.model import HybridSurrogate

BASE_BYTES = 82 * 2 ** 20
GRAPH_FACTOR = 4.0  # peak bytes per byte that autograd saves (the fit of the module docstring)
CPU_BUDGET_BYTES = 2 * 2 ** 30  # the default training budget on the CPU (a quarter of the machine if less)


class TrainingTooLarge(ValueError):
    """Training whose estimated memory is over the limit; the message says the numbers and the fix."""


@dataclass(frozen=True)
class TrainingEstimate:
    batch: int  # cases per optimiser step
    segment: int  # output intervals in one TBPTT graph
    substeps: int
    plane_cells: int
    graph_bytes: int  # what autograd saves for one case over one output interval (G)
    memory_bytes: int

    def describe(self) -> str:
        return (f"{self.batch} cases at once × {self.segment} output intervals × {self.substeps} substeps on a "
                f"{self.plane_cells:,}-cell plane need about {self.memory_bytes / 2 ** 30:.3g} GiB")

    def with_batch(self, batch: int) -> TrainingEstimate:
        """The same training with ``batch`` cases per optimiser step."""
        return replace(self, batch=batch, memory_bytes=training_memory(batch, self.segment, self.graph_bytes))


def training_memory(batch: int, segment: int, graph_bytes: int) -> int:
    """Bytes of one training step by the formula of the module docstring."""
    return int(BASE_BYTES + GRAPH_FACTOR * batch * segment * graph_bytes)


def graph_bytes(model: HybridSurrogate, forcing: Forcing) -> int:
    """Bytes autograd saves for backward over one output interval of the first case of ``forcing``
    (distinct storages; the parameters' and the forcing's own, which every interval shares, left out).
    Runs one interval forward and changes nothing (no backward, no random numbers)."""
    one = forcing.select(slice(0, 1))
    shared = {p.untyped_storage().data_ptr() for p in [*model.parameters(), *model.buffers()]}
    shared |= {t.untyped_storage().data_ptr() for t in _tensors(one)}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in shared:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    c, h = model.initial_state(one, one.source.dtype, one.source.device)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.step(c, h, one, 0.0, model.substeps(one))
    return sum(saved.values())


def _tensors(forcing: Forcing) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    forcing.map(lambda t: found.append(t) or t)
    return found


def estimate_training(model: HybridSurrogate, forcing: Forcing, n_steps: int, tbptt_steps: int,
                      batch_size: int | None) -> TrainingEstimate:
    """The estimate for training ``model`` on ``forcing`` (its substeps and graph at the current weights)."""
    batch = min(batch_size or forcing.batch_size, forcing.batch_size)
    segment = min(tbptt_steps, n_steps)
    g = graph_bytes(model, forcing)
    return TrainingEstimate(batch, segment, max(model.substeps(forcing), 1), math.prod(model.spec.shape), g,
                            training_memory(batch, segment, g))


def check_training(estimate: TrainingEstimate, limit_bytes: int, limit_name: str) -> TrainingEstimate:
    """The estimate, or :class:`TrainingTooLarge` saying how many cases at once would fit."""
    if estimate.memory_bytes <= limit_bytes:
        return estimate
    fits = largest_batch(estimate, limit_bytes)
    fix = (f"set surrogate.batch_size = {fits} or less" if fits else
           "even one case at a time does not fit: lower surrogate.tbptt_steps or use a coarser plane")
    raise TrainingTooLarge(f"surrogate.batch_size: {estimate.describe()}; over the limit of "
                           f"{limit_bytes / 2 ** 30:.3g} GiB ({limit_name}): {fix}")


def largest_batch(estimate: TrainingEstimate, limit_bytes: int) -> int:
    """The most cases at once (≤ ``estimate.batch``) whose estimate is within ``limit_bytes``; 0 if none."""
    per_case = GRAPH_FACTOR * estimate.segment * estimate.graph_bytes
    fits = math.floor((limit_bytes - BASE_BYTES) / per_case) if per_case > 0 else estimate.batch
    return max(0, min(estimate.batch, fits))


def training_budget(training_memory_gb: float | None, device: torch.device | str = "cpu") -> tuple[int, str]:
    """(bytes the mini-batch may use, what sets it): ``surrogate.training_memory_gb`` when given, else
    2 GiB or a quarter of this machine's memory, whichever is less, on the CPU; a quarter of the GPU's."""
    if training_memory_gb is not None:
        return int(training_memory_gb * 2 ** 30), "surrogate.training_memory_gb"
    device = torch.device(device)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return total // 4, "a quarter of the GPU's memory; set surrogate.training_memory_gb"
    return (min(CPU_BUDGET_BYTES, machine_memory_bytes() // 4),
            "2 GiB or a quarter of this machine's memory; set surrogate.training_memory_gb")


def batch_for_budget(estimate: TrainingEstimate, budget_bytes: int, budget_name: str) -> TrainingEstimate:
    """The estimate at the batch the budget affords: the fewest mini-batches of equal size that fit,
    B = ⌈N / ⌈N / B_max⌉⌉ (N = ``estimate.batch``, all the cases; N itself when it fits), or
    :class:`TrainingTooLarge` naming the budget's field when not even one case fits."""
    fits = largest_batch(estimate, budget_bytes)
    if fits == 0:
        one = estimate.with_batch(1)
        raise TrainingTooLarge(f"surrogate.training_memory_gb: {one.describe()}; over the training budget of "
                               f"{budget_bytes / 2 ** 30:.3g} GiB ({budget_name}): raise "
                               "surrogate.training_memory_gb, lower surrogate.tbptt_steps or use a coarser plane")
    n = estimate.batch
    return estimate.with_batch(-(-n // -(-n // fits)))


def fit_training(model: HybridSurrogate, forcing: Forcing, n_steps: int, tbptt_steps: int, batch_size: int | None,
                 budget: tuple[int, str], limit: tuple[int, str] | None) -> TrainingEstimate:
    """How training will run: ``batch_size`` cases at once when given, else the batch the ``budget``
    (bytes, what sets it) affords (``batch_for_budget``); refused by ``check_training`` when over
    ``limit`` (bytes, its field; None: not checked)."""
    estimate = estimate_training(model, forcing, n_steps, tbptt_steps, batch_size)
    if batch_size is None:
        estimate = batch_for_budget(estimate, *budget)
    return estimate if limit is None else check_training(estimate, *limit)
