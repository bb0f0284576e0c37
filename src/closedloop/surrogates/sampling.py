"""Which cases an epoch trains on and is judged on, in what order and how many at a time.

An epoch visits the B cases in shuffled mini-batches of ``batch_size`` (``mini_batches``, seeded), all
of them or the first ``max_batches`` of that order. Under ``sample_scale`` = c it visits s ≈ c √B
(``sample_size``, whole mini-batches): every ``new`` case (a warm start's cases not trained on before)
and a fresh random sample of the others (``with_new_first``), so that an epoch's cost grows like √B.
``judged_subset`` keeps a seeded fixed subset to judge an epoch on; ``judge_chunk`` = B·S is how many
cases a judged rollout (no gradients, no graph) takes at once.

Shapes: forcing with batch B; target (B, T+1, nx, ny[, nz]); floor² (B,).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from closedloop.surrogates.forcing import Forcing

def sample_size(cases: int, scale: float | None, new: int = 0, batch: int = 1) -> int:
    """Cases an epoch visits under ``sample_scale`` = c: s = min(B, max(⌈c √B⌉, new)) of B, rounded up
    to whole mini-batches of ``batch`` (a partial one costs about a whole one), so that an epoch's
    cost grows like √B and every new case is in it; B when c is None."""
    if scale is None:
        return cases
    s = max(math.ceil(scale * math.sqrt(cases) - 1e-9), new)
    return min(cases, batch * math.ceil(s / batch))


Batch = tuple[Forcing, torch.Tensor, torch.Tensor]  # forcing (B), target (B, T+1, nx, ny), floor² (B,)


def judge_chunk(batch: int, tbptt_steps: int) -> int:
    """Cases rolled out at once when a loss is judged: B·S, the mini-batch times the segment. Training
    holds the graph of S output intervals of B cases; a rollout without gradients keeps no graph, so
    B·S cases at once hold less than one training segment, and the judged loss costs few rollouts."""
    return batch * tbptt_steps


def with_new_first(n_cases: int, new: torch.Tensor, take: int, generator: torch.Generator) -> torch.Tensor:
    """``take`` case indices of ``n_cases``: every index in ``new``, then a random sample of the
    others (drawn from ``generator``), in a random order."""
    is_new = torch.zeros(n_cases, dtype=torch.bool)
    is_new[new] = True
    others = torch.nonzero(~is_new).flatten()
    chosen = torch.cat([torch.nonzero(is_new).flatten(),
                        others[torch.randperm(len(others), generator=generator)[:max(0, take - int(is_new.sum()))]]])
    return chosen[torch.randperm(len(chosen), generator=generator)]


def mini_batches(forcing: Forcing, target: torch.Tensor, floor2: torch.Tensor, size: int,
                 shuffle: torch.Generator, limit: int | None = None, sample: int | None = None,
                 new: torch.Tensor | None = None) -> Iterator[Batch]:
    """The cases in mini-batches of ``size`` in a seeded random order (all at once if size ≥ B); with
    ``limit``, only the first ``limit`` mini-batches of that order (a fresh order each call, so every
    case is equally likely to be visited in an epoch that cannot visit them all). With ``sample`` < B,
    only ``sample`` cases: the ``new`` ones and a fresh random sample of the others
    (``with_new_first``), in mini-batches of ``size``."""
    n_cases = forcing.batch_size
    if sample is not None and sample < n_cases:
        order = with_new_first(n_cases, new if new is not None else torch.zeros(0, dtype=torch.long), sample, shuffle)
        for b0 in range(0, len(order), size):
            idx = order[b0:b0 + size].to(target.device)
            yield forcing.select(idx), target[idx], floor2[idx]
        return
    if size >= n_cases:
        yield forcing, target, floor2
        return
    order = torch.randperm(n_cases, generator=shuffle)
    stop = n_cases if limit is None else min(n_cases, limit * size)
    for b0 in range(0, stop, size):
        idx = order[b0:min(b0 + size, stop)].to(target.device)
        yield forcing.select(idx), target[idx], floor2[idx]


def judged_subset(forcing: Forcing, target: torch.Tensor, cases: int | None, seed: int
                  ) -> tuple[Forcing, torch.Tensor]:
    """The cases an epoch is judged on: all of them, or ``cases`` of them drawn once (seeded) and kept
    for the whole training, so that the judged losses of its epochs compare."""
    n_cases = forcing.batch_size
    if cases is None or cases >= n_cases:
        return forcing, target
    idx = torch.randperm(n_cases, generator=torch.Generator().manual_seed(seed + 7919))[:cases].sort().values
    idx = idx.to(target.device)
    return forcing.select(idx), target[idx]
