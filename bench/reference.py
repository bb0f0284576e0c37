"""Reference-solver benchmark: cost vs grid size and precision, peak memory, the hall at 600 s.

    python bench/reference.py            # writes bench/results/reference.json, prints tables

Each configuration runs in a fresh subprocess so that its peak resident memory is its own.
Scaling: configs/scenarios/room.toml (10 x 6 x 3 m, potential flow, TVD + SSP-RK2) at cell sizes
0.5 / 0.25 / 0.125 m for 30 s of transport. Hall: configs/scenarios/hall.toml as shipped (600 s),
steady flow solved first (timed apart, cache off), then the transport, eager and with the step
compiled (``simulate(compile=True)``, its one-time compilation reported apart).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def one(kind: str, arg: str, dtype_name: str, compiled: str = "0") -> dict:
    import resource

    import torch

    from closedloop.simulators import load_scenario, simulate

    os.environ["CLOSEDLOOP_FLOW_CACHE"] = "off"
    dtype = {"float64": torch.float64, "float32": torch.float32}[dtype_name]
    if kind == "room":
        sc = load_scenario(REPO / "configs/scenarios/room.toml").with_parameters(
            {"room.cell_size": float(arg), "time.horizon": 30.0})
    else:
        sc = load_scenario(REPO / "configs/scenarios/hall.toml")
    t0 = time.perf_counter()
    res = simulate(sc, device="auto", dtype=dtype, compile=compiled == "1")
    total = time.perf_counter() - t0
    cells = 1
    for n in res.extra["grid_shape"]:
        cells *= n
    emitted = float(res.mass_emitted[-1])
    return {"case": kind, "cell_size": arg, "dtype": dtype_name, "device": res.device, "cells": cells,
            "grid": res.extra["grid_shape"], "steps": res.steps, "dt_s": res.dt, "horizon_s": sc.time.horizon,
            "flow_model": res.extra["flow_model"], "flow_s": res.flow_seconds, "transport_s": res.wall_seconds,
            "compiled": res.extra["compiled"], "compile_s": res.extra["compile_seconds"],
            "total_s": total, "cell_updates_per_s": cells * res.steps / res.wall_seconds,
            "mass_balance_rel": float((res.mass_emitted[-1] - res.mass_in_domain[-1] - res.mass_exhausted[-1]).abs()) / emitted,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", *args], capture_output=True, text=True, check=True,
                         cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    sys.path.insert(0, str(HERE))
    from common import machine, write_result
    from rich.console import Console
    from rich.table import Table

    rows = [run_child("room", cell, dt) for cell in ("0.5", "0.25", "0.125") for dt in ("float64", "float32")]
    hall = run_child("hall", "-", "float64")
    # the same run with the step fused by torch.compile (physics.kernels); compile time reported apart
    hall_compiled = run_child("hall", "-", "float64", "1")
    path = write_result("reference", {"machine": machine(), "scaling": rows, "hall": hall,
                                         "hall_compiled": hall_compiled})
    console = Console(width=140)
    t = Table(title="reference solver: 30 s of transport in room.toml (TVD + SSP-RK2, potential flow)")
    for c in ("cell m", "dtype", "cells", "steps", "transport s", "cell-updates/s", "peak RSS MiB", "mass balance"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r["cell_size"], r["dtype"], f"{r['cells']:,}", str(r["steps"]), f"{r['transport_s']:.2f}",
                  f"{r['cell_updates_per_s']:.3g}", f"{r['peak_rss_mib']:.0f}", f"{r['mass_balance_rel']:.1e}")
    console.print(t)
    console.print(f"hall.toml ({'x'.join(map(str, hall['grid']))} cells, {hall['flow_model']} flow, "
                  f"{hall['horizon_s']:.0f} s): flow solve {hall['flow_s']:.1f} s, transport {hall['transport_s']:.1f} s "
                  f"({hall['steps']} steps), total {hall['total_s']:.1f} s, peak RSS {hall['peak_rss_mib']:.0f} MiB, "
                  f"mass balance {hall['mass_balance_rel']:.1e}")
    hc = hall_compiled
    console.print(f"hall.toml, compiled step (CLOSEDLOOP_COMPILE=1): transport {hc['transport_s']:.1f} s "
                  f"(+ {hc['compile_s']:.1f} s one-time compilation), mass balance {hc['mass_balance_rel']:.1e}")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(one(*sys.argv[2:6])))
    else:
        main()
