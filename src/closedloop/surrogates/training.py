"""Training by backpropagation through rollouts, truncated (TBPTT).

The rollout is cut into segments of ``tbptt_steps`` output intervals; each segment's loss is
backpropagated and the state (c̄, h) is carried into the next segment detached, so memory
spans the whole horizon while gradients span one segment. The loss per time is relative with a
floor, ‖ĉ_t − c_t‖² / (‖c_t‖² + (φ max_t ‖c_t‖)²), so early, nearly empty fields do not dominate,
plus an optional temporal-smoothness penalty λ_s mean‖ĉ_{t+1} − 2ĉ_t + ĉ_{t−1}‖²/(‖c‖² + floor).

A curriculum trains on growing rollout lengths (e.g. 6 → 12 → 30 → 60 output steps), the epochs
split evenly between stages; AdamW adds weight decay. With ``batch_size`` each epoch visits the
cases in shuffled mini-batches (seeded), one optimiser step per segment per mini-batch, so a small
data set still gets enough steps per epoch before early stopping judges it. With a validation set the kept weights are
those of the best validation loss, and training stops after ``patience`` epochs without a gain.
The physics fields (D, δu, λ, η: ``PHYSICS_PARAMETERS``) may have their own learning rate and a
warm-up of ``physics_warmup_epochs`` in which they are fitted alone, so that the closure starts
from the best physics it can correct rather than from the untrained prior.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from closedloop.surrogates.forcing import Forcing
from closedloop.surrogates.model import PHYSICS_PARAMETERS, HybridSurrogate


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    learning_rate: float = 3e-3
    tbptt_steps: int = 4
    loss_floor: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    curriculum: tuple[int, ...] = ()  # rollout lengths in output steps; () = the whole horizon
    weight_decay: float = 0.0
    smoothness: float = 0.0
    patience: int | None = None  # early stopping on the validation loss (needs validation data)
    warmup_steps: int = 5  # linear learning-rate warm-up: Adam's first steps on a zero head are large
    physics_learning_rate: float | None = None  # for D, δu, λ (model.PHYSICS_PARAMETERS); None = learning_rate
    physics_warmup_epochs: int = 0  # first fit the physics fields alone (the closure's learning rate is 0)
    batch_size: int | None = None  # cases per optimiser step; None = all cases at once


@dataclass
class TrainReport:
    losses: list[float] = field(default_factory=list)  # full-rollout loss after each epoch
    initial_loss: float = float("nan")
    best_loss: float = float("nan")
    best_epoch: int = -1  # -1: no epoch improved on the starting weights, which are kept
    validation_losses: list[float] = field(default_factory=list)
    stopped_early: bool = False
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


def curriculum_stage(config: TrainConfig, epoch: int, n_steps: int) -> int:
    """Rollout length (output steps) trained in ``epoch``."""
    if not config.curriculum:
        return n_steps
    stages = [min(s, n_steps) for s in config.curriculum]
    per = max(1, -(-config.epochs // len(stages)))
    return stages[min(epoch // per, len(stages) - 1)]


def train(model: HybridSurrogate, forcing: Forcing, target: torch.Tensor, config: TrainConfig,
          progress: Callable[[int, float], None] | None = None,
          validation: tuple[Forcing, torch.Tensor] | None = None) -> TrainReport:
    """Fit ``model`` to reference plane series ``target`` (B, T+1, nx, ny), t = 0 row included."""
    if target.shape[0] != forcing.batch_size:
        raise ValueError(f"target has {target.shape[0]} cases but forcing has {forcing.batch_size}")
    if config.patience is not None and validation is None:
        raise ValueError("patience: early stopping needs validation data")
    if any(s < 1 for s in config.curriculum):
        raise ValueError(f"curriculum: rollout lengths must be ≥ 1, got {config.curriculum}")
    if config.batch_size is not None and config.batch_size < 1:
        raise ValueError(f"batch_size: must be ≥ 1 cases, got {config.batch_size}")
    torch.manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    physics = [p for name, p in model.named_parameters() if p.requires_grad and name in PHYSICS_PARAMETERS]
    ids = {id(p) for p in physics}
    groups = [{"params": [p for p in params if id(p) not in ids]},
              {"params": physics, "lr": config.physics_learning_rate or config.learning_rate, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    warmup_physics = config.physics_warmup_epochs if len(groups) == 2 else 0  # both closure and physics

    def judge() -> float:
        if validation is None:
            return rollout_loss(model, forcing, target, config.loss_floor)
        return rollout_loss(model, validation[0], validation[1], config.loss_floor)

    report = TrainReport(initial_loss=rollout_loss(model, forcing, target, config.loss_floor))
    if not params or config.epochs == 0:
        return report
    opt = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    warm = max(1, config.warmup_steps)
    phase = {"closure_on": warmup_physics == 0, "closure_steps": 0}

    def closure_factor(step: int) -> float:  # warm-up counted from the closure's first active step
        if not phase["closure_on"]:
            return 0.0
        phase["closure_steps"] += 1
        return min(1.0, phase["closure_steps"] / warm)

    lambdas = [lambda step: min(1.0, (step + 1) / warm)] * len(groups)
    if warmup_physics:
        lambdas[0] = closure_factor
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambdas)
    n_total = target.shape[1] - 1
    floor2 = loss_floor2(target[:, 1:], config.loss_floor)
    dt_out = model.spec.output_interval
    t_start = time.perf_counter()
    best_state = copy.deepcopy(model.state_dict())
    best_judged = judge()
    report.best_loss = report.initial_loss if validation is None else best_judged
    since_best = 0
    n_cases = forcing.batch_size
    size = min(config.batch_size or n_cases, n_cases)
    shuffle = torch.Generator().manual_seed(config.seed)
    for epoch in range(config.epochs):
        model.train()
        # physics warm-up: the closure waits (lr 0) until the physics fields are fitted
        phase["closure_on"] = epoch >= warmup_physics
        n_steps = curriculum_stage(config, epoch, n_total)
        order = torch.randperm(n_cases, generator=shuffle) if size < n_cases else torch.arange(n_cases)
        for b0 in range(0, n_cases, size):
            idx = order[b0:b0 + size]
            whole = size == n_cases
            f_b = forcing if whole else forcing.select(idx.to(target.device))
            y_b = target if whole else target[idx.to(target.device)]
            fl_b = floor2 if whole else floor2[idx.to(target.device)]
            c, h = model.initial_state(f_b, target.dtype, target.device)
            k = model.substeps(f_b)
            prev: list[torch.Tensor] = []
            for seg0 in range(0, n_steps, config.tbptt_steps):
                preds = []
                for n in range(seg0, min(seg0 + config.tbptt_steps, n_steps)):
                    c, h = model.step(c, h, f_b, n * dt_out, k)
                    preds.append(model.observe(c))
                seg = torch.stack(preds, dim=1)
                loss = rollout_loss_terms(seg, y_b[:, seg0 + 1: seg0 + 1 + seg.shape[1]], fl_b)
                if config.smoothness > 0:
                    series = torch.cat([p.detach()[:, None] for p in prev[-2:]] + [seg], dim=1)
                    if series.shape[1] >= 3:
                        curv = series[:, 2:] - 2 * series[:, 1:-1] + series[:, :-2]
                        loss = loss + config.smoothness * ((curv ** 2).sum(dim=(-2, -1)) / fl_b[:, None]).mean()
                prev = preds
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                opt.step()
                schedule.step()
                c = c.detach()
                h = h.detach() if h is not None else None
        model.eval()
        report.losses.append(rollout_loss(model, forcing, target, config.loss_floor))
        judged = report.losses[-1] if validation is None else judge()
        if validation is not None:
            report.validation_losses.append(judged)
        if judged < best_judged:
            best_judged, report.best_epoch = judged, epoch
            report.best_loss = judged
            best_state = copy.deepcopy(model.state_dict())
            since_best = 0
        else:
            since_best += 1
        if progress is not None:
            progress(epoch, report.losses[-1])
        if config.patience is not None and since_best >= config.patience:
            report.stopped_early = True
            break
    # Adam on a rollout loss is not monotone; keep the weights of the best full-horizon loss.
    model.load_state_dict(best_state)
    report.seconds = time.perf_counter() - t_start
    return report
