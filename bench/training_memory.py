"""Peak memory of one training at 20 and at 80 hall-sized cases: flat in the number of cases.

A campaign's training (lab/campaign/learn.py) takes the mini-batch that the memory budget
``surrogate.training_memory_gb`` affords (surrogates/memory.py: the fewest equal mini-batches whose
estimate fits; default 2 GiB on the CPU, or a quarter of the machine if less), so its memory should
not grow with the cases once they no longer fit at once. Measured here: configs/hall.toml's campaign
(its surrogate: room layers, TVD, multiplicative ConvGRU closure; the hall's 49 × 26 plane, 600 s in
60 output intervals, TBPTT segments of 6), trained as ``retrain_round`` trains a warm-started round
(``round_schedule(config, 1)``: mini-batches of ``surrogate.batch_size`` cases, checked by ``fit_training``) for 4 epochs, one per
stage of the curriculum 6 → 12 → 30 → 60 intervals, on one torch thread.

The cases are synthetic, of the hall's shape: the forcing is the hall's own (its Navier–Stokes flow,
solved once and cached; sources spread over the room), the reference planes random (memory does not
depend on their values). Each training runs in a fresh process (so that it is not served pages freed
by earlier work), whose peak is the kernel's high-water mark: ``/proc/self/status`` VmHWM after
writing 5 to ``/proc/self/clear_refs`` just before training (getrusage's maxrss is inherited across
fork and exec). ``rss_gb_N`` is that process peak (imports, forcing and series included), in GiB
(2³⁰ bytes, as the config's ``*_memory_gb`` fields); ``added_gb`` what training added to the
resident memory before it. For reference, 20 cases also trained full-batch (the former default).
Target: ``rss_ratio_80_vs_20`` ≤ 1.5.

    flock /tmp/closedloop-heavy.lock .venv/bin/python bench/training_memory.py   # → bench/results/training_memory.json
    .venv/bin/python bench/training_memory.py --cases 4 8 --epochs 1 --results /tmp/tm   # a quick check
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
HALL = REPO / "configs" / "hall.toml"
GIB = 2 ** 30


def hall_cases(n: int):
    """The hall campaign's config and ``n`` scenarios of it, sources on a 24 × 12 grid over the room
    (those outside the obstacles: a different case each)."""
    from pydantic import ValidationError

    from closedloop.lab.config import load_campaign_config

    config = load_campaign_config(HALL)
    scenarios = []
    for j in range(24 * 12):
        k = (97 * j) % (24 * 12)  # a stride through the grid, so that any n cases spread over the room
        try:
            position = {"source.x": 0.75 + (k % 24), "source.y": 0.8 + (k // 24)}
            scenarios.append(config.scenario.with_parameters(position))
        except ValidationError:  # inside a pillar, the partition or the furniture
            continue
        if len(scenarios) == n:
            return config, scenarios
    raise ValueError(f"--cases: at most {len(scenarios)} source positions of the grid are valid, asked for {n}")


def kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def child(n: int, epochs: int, full_batch: bool) -> dict:
    """One training in this (fresh) process; its peak resident memory."""
    import dataclasses

    import torch

    torch.set_num_threads(1)
    from closedloop.lab.campaign.learn import initial_model, round_schedule
    from closedloop.simulators.budget import memory_limit
    from closedloop.surrogates import train
    from closedloop.surrogates.coupling import batch_problems
    from closedloop.surrogates.memory import fit_training, training_budget

    config, scenarios = hall_cases(n)
    forcing, problem = batch_problems(scenarios)
    model = initial_model(config, scenarios)
    target = torch.rand(n, problem.n_steps + 1, *problem.mask.shape, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(n)) * 1e-3
    warm = round_schedule(config, 1)[-1]  # a warm-started round, as the campaign trains it
    train_config = dataclasses.replace(warm, epochs=epochs, batch_size=n if full_batch else warm.batch_size)
    budget = training_budget(config.surrogate.training_memory_gb, "cpu")
    fit = fit_training(model, forcing, problem.n_steps, train_config.tbptt_steps, train_config.batch_size, budget,
                       memory_limit(config.surrogate.max_memory_gb, "surrogate.max_memory_gb"))
    train_config = dataclasses.replace(train_config, batch_size=fit.batch)
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from the current RSS
    before = kib("VmRSS")
    t0 = time.perf_counter()
    report = train(model, forcing, target, train_config)
    return {"cases": n, "batch_size": fit.batch, "mini_batches": -(-n // fit.batch), "full_batch": full_batch,
            "epochs": epochs, "budget_gb": budget[0] / GIB, "budget_source": budget[1],
            "estimate_gb": fit.memory_bytes / GIB, "graph_bytes_per_case_interval": fit.graph_bytes,
            "rss_before_gb": before / 2 ** 20, "rss_gb": kib("VmHWM") / 2 ** 20,
            "added_gb": (kib("VmHWM") - before) / 2 ** 20, "train_s": time.perf_counter() - t0,
            "epochs_run": len(report.losses)}


def measure(n: int, epochs: int, full_batch: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(n), "--epochs", str(epochs)]
    out = subprocess.run(cmd + (["--full-batch"] if full_batch else []), capture_output=True, text=True,
                         cwd=REPO, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"training of {n} cases failed (rc {out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{n:>4} cases, {result['batch_size']:>3} at once ({result['mini_batches']} mini-batches): peak "
          f"{result['rss_gb']:.2f} GiB (training added {result['added_gb']:.2f}, estimated "
          f"{result['estimate_gb']:.2f}), {result['train_s']:.0f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs=2, default=(20, 80), metavar=("FEW", "MANY"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--no-full-batch", action="store_true", help="skip the full-batch reference")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--full-batch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs, args.full_batch)))
        return

    from bench.common import machine, write_result
    from closedloop.surrogates.coupling import batch_problems

    batch_problems(hall_cases(1)[1])  # the hall's flow solved (and cached) here, not in a measured process
    few, many = args.cases
    runs = {"few": measure(few, args.epochs), "many": measure(many, args.epochs)}
    ratio = runs["many"]["rss_gb"] / runs["few"]["rss_gb"]
    payload = {
        "machine": machine(),
        "setting": {"config": "configs/hall.toml (round 1's training config: warm start, curriculum 6/12/30/60)",
                    "plane": "49 x 26 at 0.5 m", "horizon_s": 600.0, "output_intervals": 60, "tbptt_steps": 6,
                    "epochs": args.epochs, "torch_threads": 1,
                    "cases": "synthetic: the hall's forcing (sources on a grid), random reference planes"},
        f"rss_gb_{few}": runs["few"]["rss_gb"], f"rss_gb_{many}": runs["many"]["rss_gb"],
        f"rss_ratio_{many}_vs_{few}": ratio,
        "batch_size": {str(few): runs["few"]["batch_size"], str(many): runs["many"]["batch_size"]},
        "budget_gb": runs["few"]["budget_gb"], "budget_rule": runs["few"]["budget_source"],
        "runs": runs, "target": {f"rss_ratio_{many}_vs_{few}": 1.5},
    }
    path = write_result("training_memory", payload, Path(args.results))
    if not args.no_full_batch:  # written after the main result, which stands without it
        runs["few_full_batch"] = measure(few, args.epochs, full_batch=True)
        path = write_result("training_memory", payload, Path(args.results))
    print(f"wrote {path}: peak {runs['few']['rss_gb']:.2f} GiB at {few} cases, {runs['many']['rss_gb']:.2f} GiB at "
          f"{many} (ratio {ratio:.2f}, target ≤ 1.5)")


if __name__ == "__main__":
    main()
