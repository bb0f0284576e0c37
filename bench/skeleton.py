"""Skeleton benchmark: reference solver cost vs grid size and precision; surrogate vs reference speed.

All timings in one process, side by side, on whatever device `auto` picks (CPU here).
Reference: configs/scenarios/room.toml (10 x 6 x 3 m) at cell sizes 0.5, 0.25, 0.125 m, 30 s of
transport. Surrogate: the hybrid model (untrained weights; cost does not depend on their values) on
the 0.5 m plane grid, 120 s horizon, one case and a batch of 64 scenarios.
"""
from __future__ import annotations

import time

import torch
from rich.console import Console
from rich.table import Table

from closedloop.lab.forcing import batch_problems, spec_for
from closedloop.simulators import load_scenario, simulate
from closedloop.surrogates import Forcing, HybridSurrogate

from common import machine, peak_rss_mib, write_result

torch.set_num_threads(max(1, torch.get_num_threads()))
base = load_scenario("configs/scenarios/room.toml")
rows = []
for cell in (0.5, 0.25, 0.125):
    for dtype in (torch.float64, torch.float32):
        horizon = 30.0
        sc = base.with_parameters({"room.cell_size": cell, "time.horizon": horizon})
        res = simulate(sc, device="cpu", dtype=dtype)
        cells = int(torch.tensor(res.extra["grid_shape"]).prod())
        rows.append({"cell_size_m": cell, "dtype": str(dtype).removeprefix("torch."), "cells": cells,
                     "steps": res.steps, "transport_s": res.wall_seconds, "flow_s": res.flow_seconds,
                     "cell_updates_per_s": cells * res.steps / res.wall_seconds})

# surrogate vs reference, same case, same process
sc = base
t0 = time.perf_counter(); ref = simulate(sc, device="cpu"); ref_total = time.perf_counter() - t0
forcing, problem = batch_problems([sc])
model = HybridSurrogate(spec_for(problem), problem.mask).double().eval()
with torch.no_grad():
    model.rollout(forcing, problem.n_steps)  # warm-up
    t0 = time.perf_counter(); model.rollout(forcing, problem.n_steps); one = time.perf_counter() - t0
    batch = Forcing.stack([forcing] * 64)
    t0 = time.perf_counter(); model.rollout(batch, problem.n_steps); many = time.perf_counter() - t0
speed = {"reference_transport_s": ref.wall_seconds, "reference_flow_s": ref.flow_seconds,
         "reference_total_s": ref_total, "surrogate_one_case_s": one,
         "surrogate_batch64_s": many, "speedup_one_case_vs_transport": ref.wall_seconds / one,
         "throughput_ratio_batch64": (64 / many) / (1 / ref_total)}

payload = {"machine": machine(), "reference_scaling": rows, "surrogate_vs_reference": speed,
           "peak_rss_mib": peak_rss_mib()}
path = write_result("skeleton", payload)

console = Console()
t = Table(title="reference solver (30 s of transport, room.toml)")
for c in ("cell m", "dtype", "cells", "steps", "transport s", "flow s", "cell-updates/s"):
    t.add_column(c)
for r in rows:
    t.add_row(f"{r['cell_size_m']}", r["dtype"], f"{r['cells']}", f"{r['steps']}", f"{r['transport_s']:.2f}",
              f"{r['flow_s']:.2f}", f"{r['cell_updates_per_s']:.3g}")
console.print(t)
t2 = Table(title="surrogate vs reference (room.toml, 0.5 m, 120 s)")
t2.add_column("measure"); t2.add_column("value")
for k, v in speed.items():
    t2.add_row(k, f"{v:.4g}")
console.print(t2)
console.print(f"peak RSS {payload['peak_rss_mib']:.0f} MiB; wrote {path}")
