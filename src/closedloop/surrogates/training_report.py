"""What a training did: its losses per epoch, the weights it kept, and whether it learned.

A training learned when some epoch beat the starting loss L_start (else it returns its starting
weights: ``kept_start``). Two numbers say how unsteady it was: ``peak_over_start`` = max_e L_e / L_start
(a training whose loss rose more than ``SPIKE_WARNING`` times above its start is flagged) and
``largest_spike`` = max_e L_e / min(L_start, L_0 … L_{e−1}), the largest rise above the best so far.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


SPIKE_WARNING = 10.0  # a training whose loss rose more than this factor above its start is flagged


@dataclass
class TrainReport:
    losses: list[float] = field(default_factory=list)  # full-rollout loss after each epoch
    initial_loss: float = float("nan")
    best_loss: float = float("nan")  # the loss of the kept weights (the start's when no epoch beat it)
    best_epoch: int = -1  # -1: no epoch improved on the starting weights, which are kept
    validation_losses: list[float] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0
    stages: list[int] = field(default_factory=list)  # epochs of each stage (train_stages); [] = one stage
    optimizer_state: dict[str, Any] | None = None  # AdamW's state at the end, for a warm start that keeps it

    @property
    def kept_start(self) -> bool:
        """No epoch improved on the starting weights, so the training returned them unchanged."""
        return self.best_epoch < 0

    @property
    def peak_over_start(self) -> float:
        """max_e L_e / L_start: how far the loss rose above where it started (≤ 1: it never did)."""
        return max(self.losses) / self.initial_loss if self.losses and self.initial_loss > 0 else float("nan")

    @property
    def largest_spike(self) -> float:
        """max_e L_e / min(L_start, L_0 … L_{e−1}): the largest rise above the best loss so far."""
        best, spike = self.initial_loss, 1.0
        for loss in self.losses:
            if best > 0 and math.isfinite(best):
                spike = max(spike, loss / best)
            best = min(best, loss)
        return spike

    def summary(self) -> dict[str, Any]:
        """Plain numbers for a checkpoint, a report and ``campaign status``."""
        return {"initial_loss": self.initial_loss, "best_loss": self.best_loss,
                "last_loss": self.losses[-1] if self.losses else self.initial_loss,
                "best_epoch": self.best_epoch, "epochs": len(self.losses), "stages": list(self.stages),
                "peak_over_start": self.peak_over_start, "largest_spike": self.largest_spike,
                "kept_start": self.kept_start, "seconds": self.seconds}

    def warnings(self) -> list[str]:
        """Why this training did not learn, if it did not: it kept its starting weights, or its loss
        rose more than ``SPIKE_WARNING`` times above its start."""
        out = []
        if self.losses and self.kept_start:
            out.append(f"no epoch of {len(self.losses)} improved on the starting loss {self.initial_loss:.4g}: "
                       "the weights are unchanged")
        if self.peak_over_start > SPIKE_WARNING:
            out.append(f"the loss rose to {self.peak_over_start:.3g}x its start ({max(self.losses):.4g} from "
                       f"{self.initial_loss:.4g})")
        return out
