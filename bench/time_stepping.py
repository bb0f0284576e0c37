"""How many stages the reference's SSPRK(s,2) step should have: wall time and error against s.

SSPRK(s,2) keeps forward Euler's positivity at s − 1 times its step for s right-hand-side evaluations,
so its evaluations per unit of simulated time fall like s/(s − 1): 2 (Heun), 1.5 (s = 4), 1.25 (s = 5)...
Whether the wall time follows depends on what one fused step costs per evaluation. On the mesh of
``bench/openfoam_check.py``'s transport race (room at 0.25 m, 11,520 cells, 600 s, one core, the fused
step), each s runs in its own process (a fresh compilation state, best of two runs); its error is the
space-time relative L2 of the plane against the fine solution (0.125 m, Heun), as in that script.

    taskset -c 0 .venv/bin/python bench/time_stepping.py [--stages 2,3,4,5,6,8]   # → results/time_stepping.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from common import machine, write_result  # noqa: E402

HORIZON = {"time.horizon": 600.0, "time.output_interval": 60.0}


def one(stages: int, fine_path: Path) -> dict:
    """Time and error of SSPRK(``stages``,2), fused, in this process."""
    import openfoam_check as oc

    from closedloop.simulators.geometry import room_geometry
    from closedloop.simulators.interface import BuiltinSimulator
    from closedloop.simulators.plane import plane_reduction

    torch.set_num_threads(1)
    fine, scenario = oc.room(oc.FINE_CELL, **HORIZON), oc.room(oc.SPEED_CELL, **HORIZON)
    target = oc.coarsen(torch.load(fine_path, weights_only=True), fine, scenario)[1:]
    mask = plane_reduction(scenario, room_geometry(scenario)).mask
    case = scenario.with_parameters({"numerics.stages": stages})
    runs = [BuiltinSimulator(compile=True).simulate(case) for _ in range(2)]
    best = min(runs, key=lambda r: r.wall_seconds)
    budget = (best.mass_emitted - best.mass_in_domain - best.mass_exhausted).abs().max() / best.mass_emitted[-1]
    return {"stages": stages, "seconds": best.wall_seconds, "steps": best.steps, "dt": best.dt,
            "evaluations": best.steps * stages, "compiled": best.extra["compiled"],
            "compile_seconds": runs[0].extra["compile_seconds"],
            "error": oc.rel_l2(best.plane[1:], target, mask.expand(len(target), *mask.shape)),
            "mass_balance": float(budget)}


def fine_solution(path: Path) -> None:
    """The fine plane series (0.125 m, Heun, fused), the error's reference."""
    import openfoam_check as oc

    from closedloop.simulators import simulate

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    truth = simulate(oc.room(oc.FINE_CELL, **HORIZON, **{"numerics.stages": 2}), compile=True)
    torch.save(truth.plane, path)
    print(f"fine solution ({truth.steps} steps) in {time.perf_counter() - t0:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="2,3,4,5,6,8")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one s
    parser.add_argument("--fine", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.fine)))
        return
    with tempfile.TemporaryDirectory(prefix="time-stepping-") as tmp:
        os.environ.setdefault("CLOSEDLOOP_FLOW_CACHE", str(Path(tmp) / "flows"))
        fine = Path(tmp) / "fine.pt"
        fine_solution(fine)
        rows = []
        for s in (int(v) for v in args.stages.split(",")):
            out = subprocess.run([sys.executable, __file__, "--one", str(s), "--fine", str(fine)], check=True,
                                 capture_output=True, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"s = {s:>2}: {r['steps']:>5} steps, {r['seconds']:.2f} s, error {r['error']:.7f}, "
                  f"compile {r['compile_seconds']:.1f} s", flush=True)
    heun = next((r for r in rows if r["stages"] == 2), None)
    for r in rows:
        r["speedup_vs_heun"] = heun["seconds"] / r["seconds"] if heun else None
    write_result("time_stepping", {"machine": machine(), "mesh_cells": 11520, "horizon_s": 600.0,
                                   "command": "taskset -c 0 python bench/time_stepping.py", "rows": rows})


if __name__ == "__main__":
    main()
