"""Surrogate vs reference speed, side by side in one process: the smoke room and the hall.

Room: configs/scenarios/room.toml (20x12x6 cells, potential flow, TVD + SSP-RK2, 120 s); the flow
solve is timed apart (cache off). The surrogate: the band-alone hybrid model (weights do not change
its cost) on the 20x12 plane, one case and a batch of 64 scenarios (how a planner scores candidates).

Hall (``hall``, issue 24): the surrogate a hall campaign trains (configs/hall.toml's ``[surrogate]``,
built by the library's ``new_model``: room layers, TVD, float64 as trained, and float32) against the
reference it replaces on its default path (``compile_by_default`` fuses the hall's step), one case and
``--batch`` scenarios, eager and fused (bench/paper_table.py's ``speed``: compile times apart). The
flow, which both need, is solved once before (the cache) and not counted on either side.
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


def hall(batch: int) -> dict:
    """The hall campaign's surrogate (float64 as trained, and float32) against the default reference."""
    from closedloop.lab.config import load_campaign_config
    from closedloop.lab.surrogate import new_model
    from paper_table import speed as side_by_side

    config = load_campaign_config(Path(__file__).resolve().parents[1] / "configs" / "hall.toml")
    out: dict = {"config": "configs/hall.toml", "batch": batch, "threads": torch.get_num_threads()}
    for dtype in (torch.float64, torch.float32):
        forcing, problem = batch_problems([config.scenario], dtype=dtype)
        model = new_model(config.surrogate, problem, config.seed).to(dtype).eval()
        out[str(dtype).removeprefix("torch.")] = side_by_side(model, forcing, problem.n_steps, config.scenario, batch,
                                                             "cpu", reference_compile=None)
    out["headline"] = {"dtype": "float64", **{k: out["float64"][k] for k in
                       ("reference_transport_s", "reference_compiled", "headline_path", "one_case_speedup",
                        "throughput_ratio", "surrogate_one_case_s", "surrogate_batch_s")}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS, help="where surrogate_speed.json goes")
    ap.add_argument("--batch", type=int, default=256, help="hall: scenarios in the batched rollout")
    ap.add_argument("--no-hall", action="store_true", help="the room only (seconds instead of minutes)")
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

    os.environ.pop("CLOSEDLOOP_FLOW_CACHE")  # the hall's flow (a 30-s solve) from the cache: counted on neither side
    payload = {"machine": machine(), "surrogate_vs_reference": speed,
               **({} if args.no_hall else {"hall": hall(args.batch)}), "peak_rss_mib": peak_rss_mib()}
    path = write_result("surrogate_speed", payload, args.results)

    console = Console()
    t2 = Table(title="surrogate vs reference (room.toml, 0.5 m, 120 s), one process")
    t2.add_column("measure"); t2.add_column("value")
    for k, v in speed.items():
        t2.add_row(k, f"{v:.4g}")
    console.print(t2)
    if "hall" in payload:
        for dtype in ("float64", "float32"):
            h = payload["hall"][dtype]
            console.print(f"hall {dtype}: reference {h['reference_transport_s']:.2f} s "
                          f"(compiled {h['reference_compiled']}); surrogate one case {h['surrogate_one_case_s']:.3f} s "
                          f"({h['one_case_speedup']:.1f}x), {args.batch} batched {h['surrogate_batch_s']:.2f} s "
                          f"(throughput {h['throughput_ratio']:.0f}x, {h['headline_path']})")
    console.print(f"peak RSS {payload['peak_rss_mib']:.0f} MiB; wrote {path}")


if __name__ == "__main__":
    main()
