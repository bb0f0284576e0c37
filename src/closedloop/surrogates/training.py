"""Training by backpropagation through rollouts, truncated (TBPTT).

The rollout is cut into segments of ``tbptt_steps`` output intervals; each segment's loss is
backpropagated and the state (c̄, h) is carried into the next segment detached, so memory
spans the whole horizon while gradients span one segment. The loss per time is relative with a
floor, ‖ĉ_t − c_t‖² / (‖c_t‖² + (φ max_t ‖c_t‖)²), so early, nearly empty fields do not dominate.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from closedloop.surrogates.forcing import Forcing
from closedloop.surrogates.model import HybridSurrogate


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    learning_rate: float = 3e-3
    tbptt_steps: int = 4
    loss_floor: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class TrainReport:
    losses: list[float] = field(default_factory=list)  # full-rollout loss after each epoch
    initial_loss: float = float("nan")
    best_loss: float = float("nan")
    best_epoch: int = -1  # -1: no epoch improved on the starting weights, which are kept
    seconds: float = 0.0


def rollout_loss_terms(pred: torch.Tensor, target: torch.Tensor, scale2: torch.Tensor) -> torch.Tensor:
    """Mean relative squared error of (B, T, nx, ny) series with the per-case floor ``scale2`` (B,)."""
    num = ((pred - target) ** 2).sum(dim=(-2, -1))
    den = (target ** 2).sum(dim=(-2, -1)) + scale2[:, None]
    return (num / den).mean()


def loss_floor2(target: torch.Tensor, floor: float) -> torch.Tensor:
    return (floor ** 2) * (target ** 2).sum(dim=(-2, -1)).amax(dim=1).clamp_min(1e-30)


@torch.no_grad()
def rollout_loss(model: HybridSurrogate, forcing: Forcing, target: torch.Tensor, floor: float = 0.05) -> float:
    """The training objective over the whole horizon, without gradients. target: (B, T+1, nx, ny)."""
    pred = model.rollout(forcing, target.shape[1] - 1)
    return rollout_loss_terms(pred[:, 1:], target[:, 1:], loss_floor2(target[:, 1:], floor)).item()


def train(model: HybridSurrogate, forcing: Forcing, target: torch.Tensor, config: TrainConfig,
          progress: Callable[[int, float], None] | None = None) -> TrainReport:
    """Fit ``model`` to reference plane series ``target`` (B, T+1, nx, ny), t = 0 row included."""
    if target.shape[0] != forcing.batch_size:
        raise ValueError(f"target has {target.shape[0]} cases but forcing has {forcing.batch_size}")
    torch.manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    report = TrainReport(initial_loss=rollout_loss(model, forcing, target, config.loss_floor))
    if not params or config.epochs == 0:
        return report
    opt = torch.optim.Adam(params, lr=config.learning_rate)
    n_steps = target.shape[1] - 1
    floor2 = loss_floor2(target[:, 1:], config.loss_floor)
    dt_out = model.spec.output_interval
    t_start = time.perf_counter()
    best_state = copy.deepcopy(model.state_dict())
    report.best_loss = report.initial_loss
    for epoch in range(config.epochs):
        model.train()
        c, h = model.initial_state(forcing, target.dtype, target.device)
        k = model.substeps(forcing)
        for seg0 in range(0, n_steps, config.tbptt_steps):
            preds = []
            for n in range(seg0, min(seg0 + config.tbptt_steps, n_steps)):
                c, h = model.step(c, h, forcing, n * dt_out, k)
                preds.append(c)
            seg = torch.stack(preds, dim=1)
            loss = rollout_loss_terms(seg, target[:, seg0 + 1: seg0 + 1 + seg.shape[1]], floor2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            c = c.detach()
            h = h.detach() if h is not None else None
        model.eval()
        report.losses.append(rollout_loss(model, forcing, target, config.loss_floor))
        if report.losses[-1] < report.best_loss:
            report.best_loss, report.best_epoch = report.losses[-1], epoch
            best_state = copy.deepcopy(model.state_dict())
        if progress is not None:
            progress(epoch, report.losses[-1])
    # Adam on a rollout loss is not monotone; keep the weights of the best full-horizon loss.
    model.load_state_dict(best_state)
    report.seconds = time.perf_counter() - t_start
    return report
