"""Where a hall round's training time goes: the profile behind issue 24's choices.

One warm-start round of the hall campaign (configs/hall.toml's learner, the checkpoint of round r − 1
of ``bench/learning_curve.py``'s Sobol run as the start) is taken apart on the cases that round trains
on:

- the rollout's shape: grid, output steps, stable substeps per interval, TBPTT segments;
- one epoch of training split into the rollout with gradients (forward), ``backward``, the optimiser,
  and the full-horizon evaluation that judges the epoch (no gradients);
- the forward pass split into the physics substeps and the closure;
- float32 against float64 for the same mini-batch (forward + backward), and the eager against
  the fused substep without gradients;
- torch.profiler's top operators by self CPU time.

It reads ``bench/data/learning_curve/hall`` (run ``bench/learning_curve.py --spaces hall --seeds 11``
first); nothing is trained for longer than one epoch.

    .venv/bin/python bench/training_profile.py --round 3
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from closedloop.lab import campaign as steps
from closedloop.lab.campaign.learn import load_cases, round_schedule
from closedloop.lab.store import CampaignStore
from closedloop.surrogates.coupling import batch_problems
from closedloop.surrogates.sampling import mini_batches
from closedloop.surrogates.training import Optimiser, loss_floor2, rollout_loss, rollout_segment, segment_loss

from common import machine, write_result
from learning_curve import space_config

HERE = Path(__file__).resolve().parent


class Clock:
    """Seconds by label (perf_counter around each call)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def time(self, label: str, fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds[label] += time.perf_counter() - t0
        return out


def split_forward(model, clock: Clock) -> None:  # noqa: ANN001
    """Wrap the model's physics interval and closure so that the clock sees each."""
    physics, closure = model.physics_interval, model.closure.forward
    model.physics_interval = lambda *a, **k: clock.time("forward_physics", physics, *a, **k)
    model.closure.forward = lambda *a, **k: clock.time("forward_closure", closure, *a, **k)


def one_epoch(model, forcing, target, stage, clock: Clock) -> None:  # noqa: ANN001
    """One epoch as ``train`` runs it (mini-batches, TBPTT segments), every part timed."""
    n_steps = target.shape[1] - 1
    optimiser = Optimiser(model, stage, n_steps=n_steps)
    floor2 = loss_floor2(target[:, 1:], stage.loss_floor)
    shuffle = torch.Generator().manual_seed(stage.seed)
    size = min(stage.batch_size or forcing.batch_size, forcing.batch_size)
    model.train()
    for f, tgt, fl2 in mini_batches(forcing, target, floor2, size, shuffle):
        c, h = model.initial_state(f, tgt.dtype, tgt.device)
        k = model.substeps(f)
        previous = None
        for seg0 in range(0, n_steps, stage.tbptt_steps):
            t0 = time.perf_counter()
            c, h, seg = rollout_segment(model, c, h, f, range(seg0, min(seg0 + stage.tbptt_steps, n_steps)), k)
            loss = segment_loss(seg, tgt[:, seg0 + 1: seg0 + 1 + seg.shape[1]], fl2, previous, stage.smoothness)
            clock.seconds["forward"] += time.perf_counter() - t0
            optimiser.adamw.zero_grad(set_to_none=True)
            clock.time("backward", loss.backward)
            clock.time("optimiser", lambda: (torch.nn.utils.clip_grad_norm_(optimiser.params, optimiser.clip),
                                            optimiser.adamw.step(), optimiser.schedule.lr.step()))
            previous = seg
            c, h = c.detach(), (h.detach() if h is not None else None)
    model.eval()
    clock.time("evaluation", rollout_loss, model, forcing, target, stage.loss_floor, size)


def forward_backward_seconds(model, forcing, target, stage, dtype: torch.dtype, repeats: int = 2) -> float:  # noqa: ANN001
    """Seconds of one TBPTT segment's forward + backward on the first mini-batch in ``dtype``."""
    model = model.to(dtype)
    size = min(stage.batch_size or forcing.batch_size, forcing.batch_size)
    idx = torch.arange(size)
    f = forcing.select(idx).map(lambda x: x.to(dtype) if x.is_floating_point() else x)
    tgt = target[idx].to(dtype)
    fl2 = loss_floor2(tgt[:, 1:], stage.loss_floor)
    k = model.substeps(f)
    best = float("inf")
    for _ in range(repeats):
        c, h = model.initial_state(f, dtype, tgt.device)
        t0 = time.perf_counter()
        c, h, seg = rollout_segment(model, c, h, f, range(0, stage.tbptt_steps), k)
        segment_loss(seg, tgt[:, 1:1 + seg.shape[1]], fl2, None, stage.smoothness).backward()
        best = min(best, time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
    model.double()
    return best


def top_operators(model, forcing, target, stage, n: int = 12) -> list[dict[str, Any]]:  # noqa: ANN001
    """torch.profiler's operators by self CPU time over one segment's forward + backward."""
    from torch.profiler import ProfilerActivity, profile

    size = min(stage.batch_size or forcing.batch_size, forcing.batch_size)
    idx = torch.arange(size)
    f, tgt = forcing.select(idx), target[idx]
    fl2 = loss_floor2(tgt[:, 1:], stage.loss_floor)
    k = model.substeps(f)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        c, h = model.initial_state(f, tgt.dtype, tgt.device)
        c, h, seg = rollout_segment(model, c, h, f, range(0, stage.tbptt_steps), k)
        segment_loss(seg, tgt[:, 1:1 + seg.shape[1]], fl2, None, stage.smoothness).backward()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "calls": e.count, "self_share": e.self_cpu_time_total / total} for e in events[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round", type=int, default=3, help="the warm-start round to take apart (≥ 1)")
    parser.add_argument("--work", type=Path, default=HERE / "data" / "learning_curve" / "hall")
    args = parser.parse_args()
    config = space_config("hall", 11)
    store = CampaignStore(args.work / "sobol_11")
    case_ids = steps.training_set(store.read_ledger(), args.round)
    cases = load_cases(store, case_ids)
    forcing, problem = batch_problems([c.scenario for c in cases])
    target = torch.stack([c.plane for c in cases]).double()
    model = steps.model_for_round(config, store, args.round - 1, [])
    stage = round_schedule(config, args.round)[0]
    k = model.substeps(forcing)
    out: dict[str, Any] = {
        "round": args.round, "cases": len(cases), "grid": list(model.spec.shape),
        "output_steps": target.shape[1] - 1, "substeps_per_interval": k, "tbptt_steps": stage.tbptt_steps,
        "batch_size": stage.batch_size, "epochs_per_round": stage.epochs,
        "closure_parameters": sum(p.numel() for p in model.closure.parameters()),
    }
    clock = Clock()
    split_forward(model, clock)
    t0 = time.perf_counter()
    one_epoch(model, forcing, target, stage, clock)
    out["epoch_s"] = time.perf_counter() - t0
    del model.physics_interval, model.closure.forward
    out["epoch_split_s"] = dict(clock.seconds)
    out["epoch_per_case_s"] = out["epoch_s"] / len(cases)
    print(out, flush=True)
    model = steps.model_for_round(config, store, args.round - 1, [])
    f64 = forward_backward_seconds(model, forcing, target, stage, torch.float64)
    f32 = forward_backward_seconds(model, forcing, target, stage, torch.float32)
    out["segment_forward_backward_s"] = {"float64": f64, "float32": f32, "float32_speedup": f64 / f32}
    with torch.no_grad():
        small = forcing.select(torch.arange(2))
        t0 = time.perf_counter()
        model.rollout(small, target.shape[1] - 1, k)
        eager = time.perf_counter() - t0
        kernel = model.compile_physics()
        model.rollout(small, 2, k)  # compile once
        t0 = time.perf_counter()
        model.rollout(small, target.shape[1] - 1, k)
        fused = time.perf_counter() - t0
    out["rollout_no_grad_2_cases_s"] = {"eager": eager, "fused": fused, "fused_compiled": bool(kernel.compiled)}
    model = steps.model_for_round(config, store, args.round - 1, [])
    out["top_operators"] = top_operators(model, forcing, target, stage)
    out["machine"] = machine()
    out["command"] = f"python bench/training_profile.py --round {args.round}"
    print(out, flush=True)
    write_result("training_profile", out)


if __name__ == "__main__":
    main()
