"""Synchronous vs asynchronous campaign at equal simulation budget: one simulation worker and one
trainer, each pinned to its own core (the small-scale image of a cluster that simulates while a GPU trains).

The campaign: configs/smoke.toml (the office, configs/scenarios/room.toml: 10 × 6 × 3 m at 0.5 m;
source position and inlet speed designed) with its steady flow by ``--flow`` (default
``navier_stokes``: each case solves its own RANS flow, as the hall does, so a simulation costs
seconds, not a fraction of one), ``--horizon`` seconds of transport (default 120), ``--max-cases``
simulations (default 24: 4 in the initial design, batches of 4 in sync mode, so 6 rounds), the
``error`` planner, the smoke config's 30 + 15 training epochs, and in async mode ``rounds =
max_cases`` so that retraining never waits on a round count. Both modes run the library's flow
(``flows.campaign``) against one local Prefect server, with ``runner = "dask"`` on one existing
Dask worker:

    core 0   the Dask worker (1 process, 1 thread, 1 torch/OpenMP thread): every simulation
    core 1   the campaign process (orchestration, planner, validation, training on 1 torch thread),
             the Dask scheduler and the Prefect server

Measured from the library's step timings (``closedloop.lab.timing``, logged from both processes by
bench/async_parts/timing_log.py): wall time (flow call to return), worker utilisation = simulation
seconds on the worker / (wall × 1), the time from a case's end to the next case's start on the
worker, and the final checkpoint's mean relative L2 on a fixed test set (``--test-cases`` Sobol
points of another seed, simulated once here and never trained on). The closing training is counted,
not hidden: ``utilisation`` is over the whole wall, ``utilisation_while_simulating`` from the first
simulation's start to the last one's end, and ``after_last_simulation_s`` is the tail nothing can
overlap (the closing training and report). Every checkpoint is scored on the test set at the second
its training ended (``error_over_time``), and ``same_error`` gives the wall seconds each mode needs to
reach the worse of the two final errors, and their ratio. The worker and the campaign share
one flow cache (``$CLOSEDLOOP_FLOW_CACHE``, emptied before each mode, so neither reuses the other's
flows): the worker solves each case's flow, the campaign's validation and training read it. Each simulation's and training's
(start, end, worker) go to ``durations`` for bench/async_parts/scaling.py's replay at 8, 32 and 128
workers, when that module is present.

    flock /tmp/closedloop-heavy.lock .venv/bin/python bench/async_campaign.py     # → bench/results/async_campaign.json
    .venv/bin/python bench/async_campaign.py --quick --results /tmp/ac            # a check that leaves bench/results alone
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
SMOKE = REPO / "configs" / "smoke.toml"
ROOM = REPO / "configs" / "scenarios" / "room.toml"
SIM_CORE, CAMPAIGN_CORE = 0, 1


# ----------------------------------------------------------------------------- the child: one campaign
def child(config: str, campaign_dir: str, out: str) -> None:
    """One campaign in this process (pinned by the parent), training on one torch thread."""
    import torch

    torch.set_num_threads(1)
    import closedloop.flows.campaign as flows
    from bench.async_parts.timing_log import listen

    listen("campaign")
    t0 = time.time()
    state = flows.campaign(config_path=config, campaign_dir=campaign_dir)
    Path(out).write_text(json.dumps({"flow_start": t0, "flow_end": time.time(), "state": state}))


# ----------------------------------------------------------------------------- the parent
def pinned(core: int):
    return lambda: os.sched_setaffinity(0, {core})


def campaign_config(work: Path, mode: str, horizon: float, max_cases: int, flow: str, address: str) -> Path:
    """The smoke campaign on the office with ``flow`` (its steady flow model), ``horizon`` and the budget."""
    scenario = ROOM.read_text().replace("horizon = 120.0", f"horizon = {horizon}") + f'\n[flow]\nmodel = "{flow}"\n'
    (work / "room.toml").write_text(scenario)
    text = SMOKE.read_text().replace('scenario = "scenarios/room.toml"', f'scenario = "{(work / "room.toml").as_posix()}"')
    rounds = max_cases if mode == "async" else max_cases // 4
    text = text.replace("rounds = 2", f"rounds = {rounds}\nmax_cases = {max_cases}")
    text = text.replace("error_target = 0.01\n", "")
    text = text.replace('[simulation]\ndevice = "cpu"',
                        f'[simulation]\ndevice = "cpu"\nrunner = "dask"\ndask_address = "{address}"\ndask_workers = 1')
    path = work / f"{mode}.toml"
    path.write_text(text + f'\n[campaign]\nmode = "{mode}"\nqueued = 1\n')
    return path


def test_set(config_path: Path, n: int, work: Path) -> tuple[list, list]:
    """``n`` Sobol points of seed 99 (not the campaign's), simulated once: scenarios and reference planes."""
    from closedloop.lab.campaign import design, learn, simulation
    from closedloop.lab.config import load_campaign_config
    from closedloop.lab.store import CampaignStore
    from closedloop.planners import sobol_design

    config = load_campaign_config(config_path)
    store = CampaignStore(work / "test-set")
    space = config.design.space()
    points = sobol_design(space, 4 * n, seed=99)
    points = points[design.feasible_mask(config, points)][:n]
    rows = [simulation.run_case(config, store, p) for p in space.as_dicts(points)]
    store.upsert([{"case_id": r["case_id"], "round": 0, "status": "done", "parameters": "{}",
                   "case_sha256": r["case_sha256"]} for r in rows])
    cases = learn.load_cases(store, [r["case_id"] for r in rows])
    return [c.scenario for c in cases], [c.plane for c in cases]


def test_error(state: dict, scenarios: list, planes: list) -> float:
    import torch

    from closedloop.lab.campaign.learn import predict_cases
    from closedloop.surrogates import relative_l2
    from closedloop.surrogates.checkpoint import load_model

    model = load_model(torch.load(state["latest_model"], weights_only=True))
    pred = predict_cases(model, scenarios)
    ref = torch.stack(planes).to(pred.dtype)
    return float(relative_l2(pred[:, 1:], ref[:, 1:]).mean())


def error_over_time(campaign_dir: Path, trainings: list[dict], scenarios: list, planes: list) -> list[dict]:
    """Each checkpoint's mean test relative L2 at the wall second its training ended (round order is
    training order in both modes: one trainer)."""
    import torch

    from closedloop.lab.campaign.learn import predict_cases
    from closedloop.lab.campaign.state import model_name, round_complete
    from closedloop.lab.store import CampaignStore
    from closedloop.surrogates import relative_l2
    from closedloop.surrogates.checkpoint import load_model

    store = CampaignStore(campaign_dir)
    ref = torch.stack(planes)
    out = []
    for r, training in enumerate(trainings):
        if not round_complete(store, r):
            break
        pred = predict_cases(load_model(store.load_checkpoint(model_name(r))), scenarios)
        out.append({"round": r, "t_s": training["end"],
                    "test_rel_l2": float(relative_l2(pred[:, 1:], ref.to(pred.dtype)[:, 1:]).mean())})
    return out


def time_to_reach(curve: list[dict], target: float) -> float | None:
    """The first wall second a checkpoint's test error is at or below ``target`` (None: never)."""
    return next((c["t_s"] for c in curve if c["test_rel_l2"] <= target * (1 + 1e-9)), None)


def mode_metrics(record: dict, intervals: list[dict]) -> dict:
    """Wall, utilisation, replacement gaps and the task durations of one campaign run."""
    t0, t1 = record["flow_start"], record["flow_end"]
    mine = [i for i in intervals if t0 <= i["start"] <= t1]
    # the worker's simulations (a sync round's batch span, timed in the campaign process, is not one)
    sims = sorted((i for i in mine if i["step"] == "simulation" and i["label"] != "campaign"), key=lambda i: i["start"])
    trains = sorted((i for i in mine if i["step"] == "training"), key=lambda i: i["start"])
    wall = t1 - t0
    busy = sum(i["end"] - i["start"] for i in sims)
    gaps = [b["start"] - a["end"] for a, b in zip(sims, sims[1:])]
    steps = {s: sum(i["end"] - i["start"] for i in mine if i["step"] == s) for s in sorted({i["step"] for i in mine})}
    span = (sims[-1]["end"] - sims[0]["start"]) if sims else 0.0
    return {"wall_s": wall, "simulation_busy_s": busy, "utilisation": busy / wall, "simulations": len(sims),
            # the worker while there is something to simulate (first start to last end), and the wall
            # after the last simulation (the closing training and report, which nothing can overlap)
            "utilisation_while_simulating": busy / span if span else None,
            "before_first_simulation_s": (sims[0]["start"] - t0) if sims else None,
            "after_last_simulation_s": (t1 - sims[-1]["end"]) if sims else None,
            "trainings": len(trains), "steps_s": steps,
            "replacement_start_s": {"median": statistics.median(gaps), "mean": statistics.fmean(gaps), "max": max(gaps)}
            if gaps else None,
            "durations": {"simulations": [{"start": i["start"] - t0, "end": i["end"] - t0, "worker": i["label"]}
                                          for i in sims],
                          "trainings": [{"start": i["start"] - t0, "end": i["end"] - t0, "worker": "trainer"}
                                        for i in trains],
                          "wall_s": wall},
            "stop_reason": record["state"]["stop_reason"], "rounds_done": record["state"]["rounds_done"],
            "cases_done": record["state"]["cases_done"]}


def same_error(results: dict) -> dict:
    """Wall seconds for each mode to reach the worse of the two final test errors, and their ratio."""
    target = max(r["test_rel_l2"] for r in results.values())
    reach = {m: time_to_reach(r["error_over_time"], target) for m, r in results.items()}
    ratio = reach["sync"] / reach["async"] if reach.get("sync") and reach.get("async") else None
    return {"target_test_rel_l2": target, "wall_s": reach, "wall_ratio": ratio}


def replay(durations: dict) -> dict | None:
    """bench/async_parts/scaling.py's discrete-event replay at 8, 32 and 128 workers, if present."""
    try:
        from bench.async_parts.scaling import replay as scaling_replay
    except ImportError:
        return None
    return scaling_replay(durations, workers=(8, 32, 128))


def run(args: argparse.Namespace) -> dict:
    from bench.async_parts.timing_log import ENV, read
    from bench.common import machine, write_result
    from closedloop.deployments.local_server import (
        free_port,
        local_server,
        stop,
    )

    work = Path(tempfile.mkdtemp(prefix="async-campaign-"))
    log = work / "timing.log"
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    configs = {m: campaign_config(work, m, args.horizon, args.max_cases, args.flow, address) for m in ("sync", "async")}
    os.sched_setaffinity(0, {SIM_CORE})
    os.environ["CLOSEDLOOP_FLOW_CACHE"] = str(work / "test-flows")
    scenarios, planes = test_set(configs["sync"], args.test_cases, work)
    os.sched_setaffinity(0, {CAMPAIGN_CORE})
    dask = Path(sys.executable).with_name("dask")
    results: dict = {}
    with local_server(work) as server:
        # one flow cache for the worker and the campaign: the campaign's forcing (validation, training)
        # reads the flow the worker solved for the case instead of solving it again (a fresh one per mode)
        env = dict(server.client_env(), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
                   CLOSEDLOOP_FLOW_CACHE=str(work / "flows"), **{ENV: str(log)})
        procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"], env=env, cwd=work, stdout=open(work / "scheduler.log", "w"),
                                  stderr=subprocess.STDOUT, preexec_fn=pinned(CAMPAIGN_CORE), start_new_session=True)]
        time.sleep(3)
        procs.append(subprocess.Popen([str(dask), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                       "--name", "sim-0", "--no-dashboard", "--preload",
                                       str(HERE / "async_parts" / "timing_log.py")],
                                      env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO,
                                      stdout=open(work / "worker.log", "w"), stderr=subprocess.STDOUT,
                                      preexec_fn=pinned(SIM_CORE), start_new_session=True))
        try:
            time.sleep(8)
            for mode in args.order:
                shutil.rmtree(work / "flows", ignore_errors=True)  # neither mode reuses the other's flows
                out = work / f"{mode}.json"
                t = time.time()
                proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(configs[mode]),
                                       str(work / f"camp-{mode}"), str(out)], env=env, cwd=REPO, capture_output=True,
                                      text=True, preexec_fn=pinned(CAMPAIGN_CORE))
                if proc.returncode != 0:
                    raise RuntimeError(f"{mode} campaign failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
                record = json.loads(out.read_text())
                metrics = mode_metrics(record, read(log))
                metrics["test_rel_l2"] = test_error(record["state"], scenarios, planes)
                metrics["error_over_time"] = error_over_time(work / f"camp-{mode}", metrics["durations"]["trainings"],
                                                             scenarios, planes)
                metrics["process_s"] = time.time() - t
                results[mode] = metrics
                print(f"{mode}: wall {metrics['wall_s']:.1f} s, utilisation {metrics['utilisation']:.3f}, "
                      f"test rel L2 {metrics['test_rel_l2']:.4f}, {metrics['trainings']} trainings", flush=True)
        finally:
            for proc in reversed(procs):
                stop(proc)
    sync, asyn = results["sync"], results["async"]
    payload = {
        "machine": machine(),
        "setting": {"config": "configs/smoke.toml (office: configs/scenarios/room.toml)", "horizon_s": args.horizon,
                    "flow_model": args.flow,
                    "max_cases": args.max_cases, "initial_cases": 4, "batch_size_sync": 4,
                    "rounds": {"sync": args.max_cases // 4, "async": args.max_cases}, "epochs": [30, 15],
                    "strategy": "error", "queued": 1, "simulation_workers": 1, "trainer_threads": 1,
                    "cores": {"simulation_worker": SIM_CORE, "campaign_and_training": CAMPAIGN_CORE},
                    "test_cases": args.test_cases, "test_seed": 99, "order": list(args.order)},
        "utilisation": {"sync": sync["utilisation"], "async": asyn["utilisation"]},
        "wall_s": {"sync": sync["wall_s"], "async": asyn["wall_s"]},
        "wall_ratio": sync["wall_s"] / asyn["wall_s"],
        "utilisation_while_simulating": {m: r["utilisation_while_simulating"] for m, r in results.items()},
        "after_last_simulation_s": {m: r["after_last_simulation_s"] for m, r in results.items()},
        # the wall second each mode's checkpoints first reach the worse of the two final errors
        "same_error": same_error(results),
        "test_rel_l2": {"sync": sync["test_rel_l2"], "async": asyn["test_rel_l2"]},
        "replacement_start_s": {"sync": sync["replacement_start_s"], "async": asyn["replacement_start_s"]},
        "modes": {m: {k: v for k, v in r.items() if k != "durations"} for m, r in results.items()},
        "durations": {m: r["durations"] for m, r in results.items()},
        "targets": {"utilisation_async": 0.9, "wall_ratio": 1.5},
    }
    projected = replay(payload["durations"])
    payload["scaling"] = projected if projected is not None else "bench/async_parts/scaling.py not present: not replayed"
    path = write_result("async_campaign", payload, Path(args.results))
    print(f"wrote {path}: utilisation sync {sync['utilisation']:.3f} / async {asyn['utilisation']:.3f}, "
          f"wall ratio {payload['wall_ratio']:.2f}")
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("CONFIG", "DIR", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--horizon", type=float, default=120.0, help="seconds of transport per simulation")
    parser.add_argument("--max-cases", type=int, default=24, help="simulation budget of each mode (a multiple of 4)")
    parser.add_argument("--flow", default="navier_stokes", choices=["navier_stokes", "potential"],
                        help="the office's steady flow model (navier_stokes: every case solves its own RANS flow)")
    parser.add_argument("--test-cases", type=int, default=6)
    parser.add_argument("--order", nargs="+", default=["sync", "async"], choices=["sync", "async"])
    parser.add_argument("--quick", action="store_true", help="8 cases of 40 s, 3 test cases: a check of the script")
    parser.add_argument("--results", default=str(HERE / "results"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.max_cases % 4 or args.max_cases < 8:
        parser.error("--max-cases: a multiple of 4, at least 8 (the sync rounds are batches of 4)")
    if args.quick:
        args.horizon, args.max_cases, args.test_cases = 40.0, 8, 3
    if len(os.sched_getaffinity(0)) < 2:
        parser.error("needs two cores (one for the simulation worker, one for the campaign and its training)")
    run(args)


if __name__ == "__main__":
    main()
