"""A hybrid surrogate for the surrogate tests: the spec of a plane problem, seeded, float64, in eval mode."""
from __future__ import annotations

import torch

from closedloop.surrogates import HybridSurrogate
from closedloop.surrogates.coupling import spec_for


def build(problem, *, closure=True, hidden=4, seed=0):
    torch.manual_seed(seed)
    return HybridSurrogate(spec_for(problem, hidden_channels=hidden, use_closure=closure),
                           problem.mask).double().eval()
