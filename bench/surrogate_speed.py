"""Surrogate vs reference speed on the smoke room, side by side in one process.

The reference: configs/scenarios/room.toml (20x12x6 cells, potential flow, TVD + SSP-RK2, 120 s);
the flow solve is timed apart (cache off). The surrogate: the hybrid model (weights do not change its
cost) on the 20x12 plane, one case and a batch of 64 scenarios (how a planner scores candidates).
The paper-scale comparison on the hall belongs to issue 4's bench/paper_table.py.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from closedloop.surrogates.coupling import batch_problems, spec_for
from closedloop.simulators import load_scenario, simulate
from closedloop.surrogates import Forcing, HybridSurrogate

from common import RESULTS, machine, peak_rss_mib, write_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS, help="where surrogate_speed.json goes")
    args = ap.parse_args()
    os.environ["CLOSEDLOOP_FLOW_CACHE"] = "off"
    sc = load_scenario(Path(__file__).resolve().parents[1] / "configs" / "scenarios" / "room.toml")

    # surrogate vs reference, same case, same process
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

    payload = {"machine": machine(), "surrogate_vs_reference": speed,
               "peak_rss_mib": peak_rss_mib()}
    path = write_result("surrogate_speed", payload, args.results)

    console = Console()
    t2 = Table(title="surrogate vs reference (room.toml, 0.5 m, 120 s), one process")
    t2.add_column("measure"); t2.add_column("value")
    for k, v in speed.items():
        t2.add_row(k, f"{v:.4g}")
    console.print(t2)
    console.print(f"peak RSS {payload['peak_rss_mib']:.0f} MiB; wrote {path}")


if __name__ == "__main__":
    main()
