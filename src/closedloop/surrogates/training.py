"""Training by backpropagation through rollouts, truncated (TBPTT).

The rollout is cut into segments of ``tbptt_steps`` output intervals; each segment's loss is
backpropagated and the state (c̄, h) is carried into the next segment detached, so memory
spans the whole horizon while gradients span one segment. The loss per time is relative with a
floor, ‖ĉ_t − c_t‖² / (‖c_t‖² + (φ max_t ‖c_t‖)²), so early, nearly empty fields do not dominate,
plus an optional temporal-smoothness penalty λ_s mean‖ĉ_{t+1} − 2ĉ_t + ĉ_{t−1}‖²/(‖c‖² + floor).

A curriculum trains on growing rollout lengths (e.g. 6 → 12 → 30 → 60 output steps), the epochs
split evenly between stages; AdamW adds weight decay. With ``batch_size`` each epoch visits the
cases in shuffled mini-batches (seeded), one optimiser step per segment per mini-batch, so a small
data set still gets enough steps per epoch before early stopping judges it; ``max_batches`` caps the
mini-batches of an epoch and ``judge_cases`` the cases its loss is judged on, so that an epoch costs
the same however many cases there are (a fixed budget of optimiser steps). ``sample_scale`` = c makes
an epoch's cases grow like √B instead: s ≈ c √B of the B cases (whole mini-batches), always with the
``new`` ones (a warm start's cases not trained on before), the rest a fresh random sample each epoch.
A loss is judged without gradients on ``judge_chunk`` cases at a time (B·S, far more than a
mini-batch), so judging every case costs few rollouts. With a validation set the kept weights are
those of the best validation loss, and training stops after ``patience`` epochs without a gain.
The physics fields (D, δu, λ, η: ``PHYSICS_PARAMETERS``) may have their own learning rate and a
warm-up of ``physics_warmup_epochs`` in which they are fitted alone, so that the closure starts
from the best physics it can correct rather than from the untrained prior.

``train`` composes: ``parameter_groups`` and ``Optimiser`` (AdamW, clipping, the ``Schedule`` of
rollout lengths and learning rates), ``mini_batches`` (module ``sampling``), ``tbptt_epoch`` (one pass of truncated BPTT)
and ``EarlyStopping`` (the best weights and when to stop). ``train_stages`` runs several ``train``
calls in sequence (a staged fit: the physics fields alone, then the closure), each from the weights
the one before kept, and reports them as one training; ``TrainReport.summary`` and ``.warnings`` say
whether it learned (start, best and final loss, the best epoch, the largest spike).
"""
from __future__ import annotations

import copy
import time
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from closedloop.surrogates.forcing import Forcing
from closedloop.surrogates.model import PHYSICS_PARAMETERS, HybridSurrogate
from closedloop.surrogates.sampling import Batch, judge_chunk, judged_subset, mini_batches, sample_size
from closedloop.surrogates.training_report import TrainReport


@dataclass(frozen=True)
class TrainConfig:
    """One stage of training. How long and how fast (``epochs``, ``learning_rate``) have no default:
    every caller says, and a campaign's are ``[surrogate]``'s (lab/surrogate_config.py, whose other
    training fields default to the values here)."""

    epochs: int
    learning_rate: float
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
    max_batches: int | None = None  # mini-batches per epoch at most (the first of its shuffled order); None = all
    judge_cases: int | None = None  # the epoch's loss on at most this many cases (a seeded fixed subset); None = all
    sample_scale: float | None = None  # an epoch trains on ≈ c √B cases, the new ones always; None = all


def rollout_loss_terms(pred: torch.Tensor, target: torch.Tensor, scale2: torch.Tensor) -> torch.Tensor:
    """Mean relative squared error of (B, T, nx, ny) series with the per-case floor ``scale2`` (B,)."""
    num = ((pred - target) ** 2).sum(dim=(-2, -1))
    den = (target ** 2).sum(dim=(-2, -1)) + scale2[:, None]
    return (num / den).mean()


def loss_floor2(target: torch.Tensor, floor: float) -> torch.Tensor:
    """The per-case floor (φ max_t ‖c_t‖)² of (B, T, nx, ny) series, shape (B,)."""
    return (floor ** 2) * (target ** 2).sum(dim=(-2, -1)).amax(dim=1).clamp_min(1e-30)


@torch.no_grad()
def rollout_loss(model: HybridSurrogate, forcing: Forcing, target: torch.Tensor, floor: float = 0.05,
                 chunk: int | None = None) -> float:
    """The training objective over the whole horizon, without gradients. target: (B, T+1, nx, ny).

    ``chunk``: roll out at most that many cases at once (``train`` passes ``judge_chunk``), so evaluating
    the loss holds a bounded working set, not all B cases'; every chunk takes the whole batch's stable
    substep count (which depends on the fastest case), so the mean over chunks, weighted by their sizes,
    is the same objective to rounding (bitwise the same computation when ``chunk`` ≥ B)."""
    n_cases = forcing.batch_size
    if chunk is None or chunk >= n_cases:
        pred = model.rollout(forcing, target.shape[1] - 1)
        return rollout_loss_terms(pred[:, 1:], target[:, 1:], loss_floor2(target[:, 1:], floor)).item()
    total, substeps = 0.0, model.substeps(forcing)
    for b0 in range(0, n_cases, chunk):
        idx = torch.arange(b0, min(b0 + chunk, n_cases), device=target.device)
        part = target[idx]
        pred = model.rollout(forcing.select(idx), part.shape[1] - 1, substeps)
        total += rollout_loss_terms(pred[:, 1:], part[:, 1:], loss_floor2(part[:, 1:], floor)).item() * len(idx)
    return total / n_cases


def curriculum_stage(config: TrainConfig, epoch: int, n_steps: int) -> int:
    """Rollout length (output steps) trained in ``epoch``: the curriculum's stages, epochs split evenly."""
    if not config.curriculum:
        return n_steps
    stages = [min(s, n_steps) for s in config.curriculum]
    per = max(1, -(-config.epochs // len(stages)))
    return stages[min(epoch // per, len(stages) - 1)]


def parameter_groups(model: HybridSurrogate, config: TrainConfig) -> list[dict]:
    """AdamW groups: the closure (and any other trainable parameter) at ``learning_rate`` with weight
    decay, then the physics fields (``PHYSICS_PARAMETERS``) at ``physics_learning_rate`` without; empty
    groups dropped."""
    params = [p for p in model.parameters() if p.requires_grad]
    physics = [p for name, p in model.named_parameters() if p.requires_grad and name in PHYSICS_PARAMETERS]
    ids = {id(p) for p in physics}
    groups = [{"params": [p for p in params if id(p) not in ids]},
              {"params": physics, "lr": config.physics_learning_rate or config.learning_rate, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class Schedule:
    """Per epoch, the rollout length (``curriculum_stage``); per optimiser step k, each group's
    learning-rate factor min(1, (k + 1)/W), W = ``warmup_steps``.

    With a physics warm-up (both groups present), the closure's factor is 0 for the first
    ``physics_warmup_epochs`` epochs and its linear warm-up counts from its first active step.
    """

    def __init__(self, config: TrainConfig, optimizer: torch.optim.Optimizer, n_steps: int) -> None:
        self.config, self.n_steps = config, n_steps
        self.physics_warmup = config.physics_warmup_epochs if len(optimizer.param_groups) == 2 else 0
        self.warm = max(1, config.warmup_steps)
        self.closure_on = self.physics_warmup == 0
        self.closure_steps = 0
        lambdas = [lambda step: min(1.0, (step + 1) / self.warm)] * len(optimizer.param_groups)
        if self.physics_warmup:
            lambdas[0] = self._closure_factor
        self.lr = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)

    def _closure_factor(self, step: int) -> float:
        if not self.closure_on:
            return 0.0
        self.closure_steps += 1
        return min(1.0, self.closure_steps / self.warm)

    def begin_epoch(self, epoch: int) -> int:
        """Switch the closure on once the physics warm-up is over; the rollout length of ``epoch``."""
        self.closure_on = epoch >= self.physics_warmup
        return curriculum_stage(self.config, epoch, self.n_steps)


class Optimiser:
    """AdamW on ``parameter_groups`` with the ``Schedule``'s learning rates and gradient-norm clipping."""

    def __init__(self, model: HybridSurrogate, config: TrainConfig, n_steps: int,
                 state: dict[str, Any] | None = None) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.clip = config.grad_clip
        self.adamw = torch.optim.AdamW(parameter_groups(model, config), lr=config.learning_rate,
                                       weight_decay=config.weight_decay)
        if state is not None:
            self.resume(state)
        self.schedule = Schedule(config, self.adamw, n_steps)

    def resume(self, state: dict[str, Any]) -> None:
        """Take AdamW's moments (and step counts) from an earlier training of the same model; this
        training's learning rates and weight decay stay. ValueError if the parameter groups differ."""
        groups = [dict(g) for g in self.adamw.param_groups]
        try:
            self.adamw.load_state_dict(state)
        except (ValueError, KeyError) as err:
            raise ValueError(f"optimizer_state: does not fit this model's parameter groups ({err})") from None
        for group, mine in zip(self.adamw.param_groups, groups):
            group.pop("initial_lr", None)  # the earlier schedule's; this training's Schedule sets its own
            group.update({k: v for k, v in mine.items() if k != "params"})

    def step(self, loss: torch.Tensor) -> None:
        """One descent step on ``loss`` (a 0-d tensor), then the schedule's."""
        self.adamw.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.adamw.step()
        self.schedule.lr.step()


def rollout_segment(model: HybridSurrogate, c: torch.Tensor, h: torch.Tensor | None, forcing: Forcing,
                    steps: range, substeps: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Output intervals ``steps`` from state (c, h): (c, h, predicted planes (B, len(steps), nx, ny))."""
    preds = []
    for n in steps:
        c, h = model.step(c, h, forcing, n * model.spec.output_interval, substeps)
        preds.append(model.observe(c))
    return c, h, torch.stack(preds, dim=1)


def segment_loss(seg: torch.Tensor, target: torch.Tensor, floor2: torch.Tensor, previous: torch.Tensor | None,
                 smoothness: float) -> torch.Tensor:
    """``rollout_loss_terms`` of a segment (B, S, nx, ny) plus λ_s mean‖ĉ_{t+1} − 2ĉ_t + ĉ_{t−1}‖²/floor²,
    the curvature continued across the boundary with the previous segment's last two planes (detached)."""
    loss = rollout_loss_terms(seg, target, floor2)
    if smoothness > 0:
        series = seg if previous is None else torch.cat([previous[:, -2:].detach(), seg], dim=1)
        if series.shape[1] >= 3:
            curv = series[:, 2:] - 2 * series[:, 1:-1] + series[:, :-2]
            loss = loss + smoothness * ((curv ** 2).sum(dim=(-2, -1)) / floor2[:, None]).mean()
    return loss


def tbptt_epoch(model: HybridSurrogate, batches: Iterator[Batch], n_steps: int, tbptt_steps: int,
                smoothness: float, update: Callable[[torch.Tensor], None]) -> None:
    """One epoch of truncated BPTT: per batch, roll out ``n_steps`` output intervals in segments of
    ``tbptt_steps``, ``update`` on each segment's loss, and carry the state (c̄, h) on detached."""
    for forcing, target, floor2 in batches:
        c, h = model.initial_state(forcing, target.dtype, target.device)
        k = model.substeps(forcing)
        previous = None
        for seg0 in range(0, n_steps, tbptt_steps):
            c, h, seg = rollout_segment(model, c, h, forcing, range(seg0, min(seg0 + tbptt_steps, n_steps)), k)
            update(segment_loss(seg, target[:, seg0 + 1: seg0 + 1 + seg.shape[1]], floor2, previous, smoothness))
            previous = seg
            c = c.detach()
            h = h.detach() if h is not None else None


class EarlyStopping:
    """The weights of the best judged loss so far, and whether ``patience`` epochs passed without a gain."""

    def __init__(self, model: HybridSurrogate, judged: float, patience: int | None) -> None:
        self.best, self.patience, self.since_best = judged, patience, 0
        self.state = copy.deepcopy(model.state_dict())

    def update(self, model: HybridSurrogate, judged: float) -> bool:
        """Record an epoch's judged loss; True if it improved on the best (whose weights are kept)."""
        if judged < self.best:
            self.best, self.since_best = judged, 0
            self.state = copy.deepcopy(model.state_dict())
            return True
        self.since_best += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience


def _check(forcing: Forcing, target: torch.Tensor, config: TrainConfig, validation: object) -> None:
    if target.shape[0] != forcing.batch_size:
        raise ValueError(f"target has {target.shape[0]} cases but forcing has {forcing.batch_size}")
    if config.patience is not None and validation is None:
        raise ValueError("patience: early stopping needs validation data")
    if any(s < 1 for s in config.curriculum):
        raise ValueError(f"curriculum: rollout lengths must be ≥ 1, got {config.curriculum}")
    if config.batch_size is not None and config.batch_size < 1:
        raise ValueError(f"batch_size: must be ≥ 1 cases, got {config.batch_size}")
    if config.max_batches is not None and config.max_batches < 1:
        raise ValueError(f"max_batches: must be ≥ 1 mini-batches, got {config.max_batches}")
    if config.judge_cases is not None and config.judge_cases < 1:
        raise ValueError(f"judge_cases: must be ≥ 1 cases, got {config.judge_cases}")
    if config.sample_scale is not None and not config.sample_scale > 0:
        raise ValueError(f"sample_scale: must be > 0, got {config.sample_scale}")
    if config.sample_scale is not None and config.max_batches is not None:
        raise ValueError("sample_scale: sets an epoch's cases itself; leave max_batches unset")


def train(model: HybridSurrogate, forcing: Forcing, target: torch.Tensor, config: TrainConfig,
          progress: Callable[[int, float], None] | None = None,
          validation: tuple[Forcing, torch.Tensor] | None = None,
          optimizer_state: dict[str, Any] | None = None, new_cases: Sequence[int] | None = None) -> TrainReport:
    """Fit ``model`` to reference plane series ``target`` (B, T+1, nx, ny), t = 0 row included.

    Early stopping and the kept weights judge the validation loss if given, else the training loss
    (its report's ``losses``: over every case, or over ``judge_cases`` of them, a fixed seeded subset).
    ``optimizer_state`` (a report's ``optimizer_state``) continues AdamW's moments from an earlier
    training of this model; the report's ``optimizer_state`` is AdamW's state at the end.
    ``new_cases``: indices of the cases not trained on before, which every epoch visits under
    ``sample_scale``.
    """
    _check(forcing, target, config, validation)
    n_cases = forcing.batch_size
    new = torch.as_tensor(list(new_cases or []), dtype=torch.long)
    if len(new) and (int(new.min()) < 0 or int(new.max()) >= n_cases):
        raise ValueError(f"new_cases: indices must lie in [0, {n_cases}), got {new.tolist()}")
    size = min(config.batch_size or n_cases, n_cases)
    sample = sample_size(n_cases, config.sample_scale, len(new.unique()), size) if config.sample_scale else None
    chunk = judge_chunk(size, config.tbptt_steps)
    torch.manual_seed(config.seed)
    seen = judged_subset(forcing, target, config.judge_cases, config.seed)  # the training loss's cases
    report = TrainReport(initial_loss=rollout_loss(model, *seen, config.loss_floor, chunk))
    if config.epochs == 0 or not any(p.requires_grad for p in model.parameters()):
        return report
    optimiser = Optimiser(model, config, n_steps=target.shape[1] - 1, state=optimizer_state)
    floor2 = loss_floor2(target[:, 1:], config.loss_floor)
    t_start = time.perf_counter()
    judged0 = report.initial_loss if validation is None else rollout_loss(model, *validation, config.loss_floor, chunk)
    stopping = EarlyStopping(model, judged0, config.patience)
    report.best_loss = report.initial_loss if validation is None else stopping.best
    shuffle = torch.Generator().manual_seed(config.seed)
    for epoch in range(config.epochs):
        model.train()
        n_steps = optimiser.schedule.begin_epoch(epoch)
        tbptt_epoch(model, mini_batches(forcing, target, floor2, size, shuffle, config.max_batches, sample, new),
                    n_steps, config.tbptt_steps, config.smoothness, optimiser.step)
        model.eval()
        report.losses.append(rollout_loss(model, *seen, config.loss_floor, chunk))
        judged = report.losses[-1] if validation is None else rollout_loss(model, *validation, config.loss_floor, chunk)
        if validation is not None:
            report.validation_losses.append(judged)
        if stopping.update(model, judged):
            report.best_epoch, report.best_loss = epoch, judged
        if progress is not None:
            progress(epoch, report.losses[-1])
        if stopping.should_stop:
            report.stopped_early = True
            break
    # Adam on a rollout loss is not monotone; keep the weights of the best full-horizon loss.
    model.load_state_dict(stopping.state)
    report.seconds = time.perf_counter() - t_start
    report.optimizer_state = optimiser.adamw.state_dict()
    return report


def train_stages(model: HybridSurrogate, forcing: Forcing, target: torch.Tensor, stages: Sequence[TrainConfig],
                 progress: Callable[[int, float], None] | None = None,
                 optimizer_state: dict[str, Any] | None = None, new_cases: Sequence[int] | None = None
                 ) -> TrainReport:
    """``train`` once per stage, each from the weights the stage before kept (a staged fit, e.g. the
    physics fields alone and then the closure), reported as one training.

    The report's losses run over all stages' epochs (``stages`` holds each stage's count); its start
    is the first stage's, its best the kept weights' (the last stage's best), its ``best_epoch`` the
    epoch, counted over all stages, whose weights were kept (−1 if no stage improved on its start).
    ``optimizer_state`` seeds the first stage's AdamW; each later stage starts its own. ``new_cases``
    goes to every stage (``train``).
    """
    if not stages:
        raise ValueError("stages: a training needs at least one stage")
    total = TrainReport()
    offset = 0
    for i, config in enumerate(stages):
        shift = offset
        step = None if progress is None else (lambda epoch, loss, shift=shift: progress(shift + epoch, loss))
        report = train(model, forcing, target, config, progress=step,
                       optimizer_state=optimizer_state if i == 0 else None, new_cases=new_cases)
        if i == 0:
            total.initial_loss = report.initial_loss
        total.losses += report.losses
        total.best_loss = report.best_loss if report.losses else total.best_loss
        if report.best_epoch >= 0:
            total.best_epoch = offset + report.best_epoch
        total.stages.append(len(report.losses))
        total.seconds += report.seconds
        total.stopped_early |= report.stopped_early
        total.optimizer_state = report.optimizer_state
        offset += len(report.losses)
    if math.isnan(total.best_loss):
        total.best_loss = total.initial_loss
    return total
