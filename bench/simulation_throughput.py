"""A first round of many simulations on a small machine: the flow solved once per geometry, simulations capped
at the cores, against the old behaviour (all at once, each solving the same flow).

The first round of configs/hall.toml (its first ``n`` Sobol cases: Navier–Stokes flow, 600 s) is simulated
through the campaign's own simulate step (``lab.campaign.simulation.run_case``) from ``n`` threads at once,
twice, side by side in one process:

- ``before``: every case solves the flow itself (as when the flow cache had no lock: all start together,
  all miss the cache) and all ``n`` run at once (``max_concurrent = n``);
- ``after``: the defaults: a fresh flow cache with its lock per geometry (one solve, the others read it)
  and at most ``usable cores`` simulations at once (``simulators.concurrency``).

Reported: wall seconds of the round, per case (wall / n), and how many flow solves ran.

    .venv/bin/python bench/simulation_throughput.py [--cases 8]   # → bench/results/simulation_throughput.json
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from common import machine, write_result  # noqa: E402

from closedloop.lab.campaign.design import feasible_sobol  # noqa: E402
from closedloop.lab.campaign.simulation import run_case  # noqa: E402
from closedloop.lab.config import load_campaign_config  # noqa: E402
from closedloop.lab.store import CampaignStore  # noqa: E402
from closedloop.simulators import flow_cache  # noqa: E402
from closedloop.simulators.concurrency import usable_cores  # noqa: E402

CONFIG = HERE.parent / "configs" / "hall.toml"


def one_round(n: int, max_concurrent: int, cache: str, root: Path) -> dict:
    config = load_campaign_config(CONFIG).with_overrides(**{"simulation.max_concurrent": max_concurrent})
    points, _ = feasible_sobol(config, n, 0)
    batch = config.design.space().as_dicts(points)
    os.environ["CLOSEDLOOP_FLOW_CACHE"] = cache
    solves: list[float] = []
    real = flow_cache.solve_flow

    def counted(scenario, geometry):
        t0 = time.perf_counter()
        out = real(scenario, geometry)
        solves.append(time.perf_counter() - t0)
        return out

    flow_cache.solve_flow = counted
    store = CampaignStore(root)
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=n) as pool:  # n asked at once, as a mapped Prefect task does
            rows = list(pool.map(lambda p: run_case(config, store, p), batch))
    finally:
        flow_cache.solve_flow = real
    wall = time.perf_counter() - t0
    return {"cases": n, "max_concurrent": max_concurrent, "wall_seconds": wall, "seconds_per_case": wall / n,
            "flow_solves": len(solves), "flow_solve_seconds": solves,
            "sim_seconds": [r["sim_seconds"] for r in rows], "cpu_seconds": [r["cpu_seconds"] for r in rows]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        before = one_round(args.cases, args.cases, "off", tmp_path / "before")
        after = one_round(args.cases, usable_cores(), str(tmp_path / "flows"), tmp_path / "after")
    result = {"config": "configs/hall.toml (first round: its first Sobol cases)", "machine": machine(),
              "before": before, "after": after, "speedup": before["wall_seconds"] / after["wall_seconds"]}
    path = write_result("simulation_throughput", result, args.results)
    print(f"{args.cases} hall cases at once on {usable_cores()} cores: before {before['wall_seconds']:.0f} s "
          f"({before['seconds_per_case']:.0f} s a case, {before['flow_solves']} flow solves), after "
          f"{after['wall_seconds']:.0f} s ({after['seconds_per_case']:.0f} s a case, {after['flow_solves']} "
          f"flow solve): {result['speedup']:.1f}× → {path}")


if __name__ == "__main__":
    main()
