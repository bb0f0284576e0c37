"""Orchestration overhead of the demo campaign, and how fast a killed campaign resumes.

The demo campaign (configs/smoke.toml, what `make demo` runs: 2 rounds, 4 + 4 reference simulations)
runs as a Prefect flow against a local Prefect server (127.0.0.1 on a free port, its own PREFECT_HOME:
``closedloop.deployments.local_server``), in a child process whose science steps are timed from inside
by the library's step-timing hook (``closedloop.lab.timing``): a listener records the wall-clock
interval of every simulation (``run_case`` when it simulates), validation, training, planning and
report figure. Then

    orchestration = flow wall time − |union of the science intervals|

is everything else: Prefect (flow/task runs, state round trips, result persistence), the ledger and
checkpoint I/O, locks, audits and serialisation. Simulations run in parallel threads, hence the union
rather than a sum. Figures for the round report are counted apart ("reporting") and the fraction is
given both ways. Target: orchestration below 3 % of the flow's wall time.

Resume: the same campaign in a fresh directory is SIGKILLed (``$CLOSEDLOOP_FAULT_POINT``) in the middle
of round 1 — once during a simulation, once during training — and started again; the resume time is
from the restarted process's launch to the first science step it begins (interpreter and imports
included, and apart: from entering the flow to that step). The resumed ledger is compared with the
uninterrupted run's.

    .venv/bin/python bench/orchestration.py      # → bench/results/orchestration.json
    .venv/bin/python bench/orchestration.py --results /tmp/orch   # a check that leaves bench/results alone
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

T_LAUNCH_SEEN = time.time()  # the child's first statement: what imports follow are its start-up

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIG = REPO / "configs" / "smoke.toml"


# ----------------------------------------------------------------------------- the child: one campaign
def child(config: str, campaign_dir: str, out: str) -> None:
    """Run the campaign flow with a step-timing listener; write the intervals to ``out``."""
    import closedloop.flows.campaign as flows
    from closedloop.lab import timing

    t_imported = time.time()
    intervals: list[dict] = []
    lock = threading.Lock()  # simulations run in worker threads

    def record(step: str, start: float, end: float) -> None:
        with lock:
            intervals.append({"step": step, "start": start, "end": end})

    t_flow = time.time()
    with timing.listening(record):
        state = flows.campaign(config_path=config, campaign_dir=campaign_dir)
    t_end = time.time()
    Path(out).write_text(json.dumps({"launch_seen": T_LAUNCH_SEEN, "imported": t_imported, "flow_start": t_flow,
                                     "flow_end": t_end, "intervals": intervals, "state": state}))


# ----------------------------------------------------------------------------- the parent
def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def run_child(api: str, tmp: Path, campaign_dir: Path, tag: str, fault: str | None = None,
              fault_log: Path | None = None) -> tuple[int, float, dict | None]:
    """One campaign process; returns (exit code, launch time, its timing record or None if killed)."""
    from closedloop.deployments.local_server import clean_env

    env = dict(clean_env(tmp / f"home-{tag}"), PREFECT_API_URL=api, MPLBACKEND="Agg")
    env.pop("CLOSEDLOOP_FAULT_POINT", None)
    if fault:
        env["CLOSEDLOOP_FAULT_POINT"] = fault
    if fault_log:
        env["CLOSEDLOOP_FAULT_LOG"] = str(fault_log)
    out = tmp / f"{tag}.json"
    launched = time.time()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(CONFIG), str(campaign_dir),
                           str(out)], env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"campaign {tag} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode, launched, json.loads(out.read_text()) if out.is_file() else None


def split(record: dict) -> dict:
    flow_wall = record["flow_end"] - record["flow_start"]
    iv = record["intervals"]
    by_step = {}
    for step in sorted({i["step"] for i in iv}):
        by_step[step] = union_seconds([(i["start"], i["end"]) for i in iv if i["step"] == step])
    science = union_seconds([(i["start"], i["end"]) for i in iv if i["step"] != "reporting"])
    with_reporting = union_seconds([(i["start"], i["end"]) for i in iv])
    return {"flow_wall_s": flow_wall, "steps_s": by_step, "science_union_s": science,
            "science_and_reporting_union_s": with_reporting,
            "orchestration_s": flow_wall - with_reporting,
            "orchestration_fraction": (flow_wall - with_reporting) / flow_wall,
            "orchestration_fraction_counting_reporting": (flow_wall - science) / flow_wall,
            "process_startup_s": record["flow_start"] - record["launch_seen"],
            "imports_s": record["imported"] - record["launch_seen"]}


def ledger_rows(campaign_dir: Path) -> list[tuple]:
    import pandas as pd

    df = pd.read_parquet(campaign_dir / "ledger.parquet")
    return sorted(zip(df["case_id"], df["round"], df["status"], df["parameters"]))


def kill_count(fault_log: Path, point: str, round_index: int) -> int:
    """The hit number of ``point`` half-way through round ``round_index`` in the uninterrupted run.

    A round's hits lie between the previous round's ``retrain:done`` and its own.
    """
    names = [line.split(" ", 2)[1] for line in fault_log.read_text().splitlines()]
    details = [(line.split(" ", 2) + [""])[2] for line in fault_log.read_text().splitlines()]
    done = {d: k for k, (n, d) in enumerate(zip(names, details)) if n == "retrain:done"}
    first, last = done.get(str(round_index - 1), -1), done[str(round_index)]
    mine = [k for k in range(first + 1, last) if names[k] == point]
    if not mine:
        raise RuntimeError(f"{point} was never reached in round {round_index}")
    return names[: mine[len(mine) // 2] + 1].count(point)


def resume_case(api: str, tmp: Path, point: str, count: int, reference: list[tuple]) -> dict:
    directory = tmp / f"killed-{point.replace(':', '-')}"
    rc, _, _ = run_child(api, tmp, directory, f"kill-{point}", fault=f"{point}@{count}")
    if rc != -signal.SIGKILL:
        raise RuntimeError(f"the fault {point}@{count} did not kill the campaign (rc {rc})")
    rc, launched, record = run_child(api, tmp, directory, f"resume-{point}")
    assert rc == 0 and record is not None
    first = min(i["start"] for i in record["intervals"])
    first_step = min(record["intervals"], key=lambda i: i["start"])["step"]
    killed_step = {"simulate:progress": "simulation", "train:epoch": "training"}[point]
    redo = min(i["start"] for i in record["intervals"] if i["step"] == killed_step)
    return {"kill_point": f"{point}@{count}", "resume_to_first_work_s": first - launched,
            "flow_entry_to_first_work_s": first - record["flow_start"],
            "interrupted_step": killed_step, "resume_to_interrupted_step_s": redo - launched,
            "process_launch_to_flow_entry_s": record["flow_start"] - launched,
            "first_step_after_resume": first_step, "resumed_run_wall_s": record["flow_end"] - launched,
            "final_ledger_equals_uninterrupted": ledger_rows(directory) == reference}


def code_commit() -> str | None:
    """The benchmarked commit: ``$CLOSEDLOOP_BENCH_COMMIT`` (for an exported snapshot), else git's HEAD."""
    if os.environ.get("CLOSEDLOOP_BENCH_COMMIT"):
        return os.environ["CLOSEDLOOP_BENCH_COMMIT"]
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def main(results: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from closedloop.deployments.local_server import local_server

    sys.path.insert(0, str(HERE))
    from common import machine, write_result

    console = Console()
    with tempfile.TemporaryDirectory(prefix="closedloop-orch-") as name:
        tmp = Path(name)
        t0 = time.time()
        with local_server(tmp, timeout=120) as server:
            server_start = time.time() - t0
            api = server.api
            fault_log = tmp / "points.log"
            rc, launched, record = run_child(api, tmp, tmp / "demo", "demo", fault_log=fault_log)
            demo = split(record)
            demo["process_launch_to_flow_entry_s"] = record["flow_start"] - launched
            reference = ledger_rows(tmp / "demo")
            resumes = [resume_case(api, tmp, point, kill_count(fault_log, point, 1), reference)
                       for point in ("simulate:progress", "train:epoch")]

    payload = {"machine": machine(), "config": str(CONFIG.relative_to(REPO)), "prefect_server": "local, SQLite",
               "code_commit": code_commit(),
               "server_start_s": server_start, "demo_campaign": demo, "resume_after_kill": resumes,
               "target_orchestration_fraction": 0.03,
               "meets_target": demo["orchestration_fraction"] < 0.03}
    path = write_result("orchestration", payload, results)

    table = Table(title=f"demo campaign ({payload['config']}) on a local Prefect server")
    table.add_column("part")
    table.add_column("seconds", justify="right")
    table.add_column("share of flow wall", justify="right")
    for step, seconds in demo["steps_s"].items():
        table.add_row(step, f"{seconds:.2f}", f"{seconds / demo['flow_wall_s']:.1%}")
    table.add_row("orchestration (rest)", f"{demo['orchestration_s']:.2f}", f"{demo['orchestration_fraction']:.2%}")
    table.add_row("flow wall", f"{demo['flow_wall_s']:.2f}", "100%")
    console.print(table)
    console.print(f"orchestration {demo['orchestration_fraction']:.2%} of the flow's wall time "
                  f"({demo['orchestration_fraction_counting_reporting']:.2%} counting report figures as "
                  f"orchestration); target < 3 %; process start-up before the flow {demo['process_startup_s']:.1f} s")
    resume = Table(title="resume after SIGKILL in round 1")
    for col in ("kill point", "launch → first work (s)", "flow entry → first work (s)", "first step",
                "launch → interrupted step again (s)", "ledger = uninterrupted"):
        resume.add_column(col)
    for r in resumes:
        resume.add_row(r["kill_point"], f"{r['resume_to_first_work_s']:.2f}", f"{r['flow_entry_to_first_work_s']:.2f}",
                       r["first_step_after_resume"], f"{r['resume_to_interrupted_step_s']:.2f}",
                       str(r["final_ledger_equals_uninterrupted"]))
    console.print(resume)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=HERE / "results", help="where orchestration.json goes")
    ap.add_argument("--child", nargs=3, metavar=("CONFIG", "CAMPAIGN_DIR", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
    else:
        main(args.results)
