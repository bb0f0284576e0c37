"""The hall campaign end to end, as a user runs it, on the default path against the eager one.

Issue 24's headline: ``closedloop campaign run configs/hall.toml`` (4 rounds, 8 + 4 + 4 + 4 cases) on
2 cores, its wall seconds, the seconds of each round by step (the campaign's own clock,
``campaign.json``'s ``seconds_by_round``), each round's training seconds (its checkpoint), and the
held-out error of its final model (``bench/learning_curve.py``'s 24 hall test cases, never proposed).

- ``hall``: configs/hall.toml as shipped, on the default path (the reference step and the learner's
  layered substep fused where it pays: ``compile_by_default``, ``surrogate.compile``);
- ``baseline``: the campaign as it ran before issue 24: ``CLOSEDLOOP_COMPILE=0`` (every step eager)
  and every case in each warm epoch (configs/hall.toml without its ``warm_start_sample``);
- ``hall_every_case``: the default path with the learner before (every case in each warm epoch): what
  the √n warm start (``warm_start_sample``) buys and costs, side by side;
- ``hall_async``: the same campaign in async mode (``[campaign] mode = "async"``), to the same 20
  cases: its trainings run beside the simulations, on the cores they leave.

Each arm runs in its own process (its own compile cache in memory, as a user's run has) through the
campaign flow on a throwaway Prefect server (its start-up not counted), one after the other on the
same machine. An arm whose result is on file under ``--work`` is not run again; the result file is
written after each arm.

    .venv/bin/python bench/campaign_time.py            # → bench/results/campaign_time.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from closedloop.lab import campaign as steps
from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import CampaignStore

from common import machine, write_result

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "hall.toml"
ARMS = {"hall": {}, "baseline": {"CLOSEDLOOP_COMPILE": "0"}, "hall_async": {}, "hall_every_case": {}}
ASYNC = {"hall_async"}  # the same campaign in async mode, to the same 20 cases
BEFORE = {"baseline", "hall_every_case"}  # the learner before: every case in each warm epoch


def arm_config(arm: str, work: Path, seed: int | None = None) -> Path:
    """configs/hall.toml, or a copy of it in ``work``: for an async arm with ``[campaign] mode =
    "async"`` and a budget of the sync campaign's 20 cases (async has no batches: its cases arrive one
    by one); for the baseline without ``surrogate.warm_start_sample``; with ``seed``, the campaign's seed
    replaced (its Sobol round 0, its trainings: another draw of the same comparison)."""
    if arm not in ASYNC | BEFORE and seed is None:
        return CONFIG
    text = CONFIG.read_text()
    if seed is not None:
        text = re.sub(r"(?m)^seed = \d+$", f"seed = {seed}", text, count=1)
    text = text.replace('scenario = "scenarios/', f'scenario = "{(CONFIG.parent / "scenarios").as_posix()}/')
    if arm in BEFORE:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("warm_start_sample")) + "\n"
    if arm in ASYNC:
        text = text.replace("[budget]\n", "[budget]\nmax_cases = 20\n") + '\n[campaign]\nmode = "async"\n'
    path = work / f"{arm}.toml"
    path.write_text(text)
    return path


def run_arm(arm: str, work: Path, seed: int | None = None) -> dict[str, Any]:
    """One campaign through the flow in this process; its times and its final model's held-out error."""
    from prefect.testing.utilities import prefect_test_harness

    from closedloop.flows.campaign import campaign
    from learning_curve import TEST_SEED, test_errors
    from active_learning_parts.heldout import held_out

    path = arm_config(arm, work, seed)
    config = load_campaign_config(path)
    out = work / arm
    resumed = out.exists()
    with prefect_test_harness(server_startup_timeout=180):
        t0 = time.perf_counter()
        campaign(str(path), str(out))
        wall = time.perf_counter() - t0
    store = CampaignStore(out)
    state = store.read_state()
    ledger = store.read_ledger()
    rounds = [r for r in range(config.budget.rounds) if steps.round_complete(store, r)]
    training = [store.load_checkpoint(steps.model_name(r))["training"] for r in rounds]
    test = held_out(config, HERE / "data" / "learning_curve" / "hall", 24, TEST_SEED)
    final = test_errors(test, steps.model_for_round(config, store, rounds[-1], []))
    by_round = state.get("seconds_by_round", {})
    by_step: dict[str, float] = {}
    for steps_of_round in by_round.values():
        for step, s in steps_of_round.items():
            by_step[step] = by_step.get(step, 0.0) + float(s)
    return {"wall_s": wall, "resumed": resumed, "compile_env": os.environ.get("CLOSEDLOOP_COMPILE"),
            "n": [int(((ledger["round"] <= r) & (ledger["status"] == "done")).sum()) for r in rounds],
            "training_s_by_round": [float(t["seconds"]) for t in training],
            "torch_threads_by_round": [t.get("torch_threads") for t in training],
            "seconds_by_round": by_round, "seconds_by_step": by_step,
            "heldout_mean": final["mean"], "heldout_p95": final["p95"], "heldout_final_mean": final["final_mean"]}


def summary(arms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "hall" in arms:
        h = arms["hall"]
        warm, n = h["training_s_by_round"][1:], h["n"][1:]
        out["training_growth_warm"] = warm[-1] / warm[0] if len(warm) > 1 else None
        out["sqrt_cases_growth_warm"] = (n[-1] / n[0]) ** 0.5 if len(n) > 1 else None
    if {"hall", "baseline"} <= arms.keys():
        out["wall_ratio"] = arms["baseline"]["wall_s"] / arms["hall"]["wall_s"]
        out["heldout_ratio"] = arms["hall"]["heldout_mean"] / arms["baseline"]["heldout_mean"]
    if {"hall", "hall_every_case"} <= arms.keys():  # the √n warm start's own share, on the same path
        out["heldout_ratio_every_case"] = arms["hall"]["heldout_mean"] / arms["hall_every_case"]["heldout_mean"]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=HERE / "data" / "campaign_time")
    ap.add_argument("--arm", choices=sorted(ARMS), help="run this arm here (the driver starts each in a process)")
    ap.add_argument("--arms", type=lambda s: s.split(","), default=list(ARMS))
    ap.add_argument("--seed", type=int, help="another campaign seed: results in campaign_time_seed<N>.json, "
                    "work in <work>_seed<N> (the held-out comparison's spread; default arms hall,hall_every_case)")
    args = ap.parse_args(argv)
    name = "campaign_time"
    if args.seed is not None:
        name = f"campaign_time_seed{args.seed}"
        args.work = args.work.with_name(f"{args.work.name}_seed{args.seed}")
        if argv is None and "--arms" not in sys.argv:
            args.arms = ["hall", "hall_every_case"]
    args.work.mkdir(parents=True, exist_ok=True)
    if args.arm:
        (args.work / f"{args.arm}.json").write_text(json.dumps(run_arm(args.arm, args.work, args.seed), indent=2))
        return
    if os.environ.get("CLOSEDLOOP_COMPILE"):
        ap.error("unset CLOSEDLOOP_COMPILE: the arms say themselves whether they compile")
    arms: dict[str, dict[str, Any]] = {}
    for arm in args.arms:
        path = args.work / f"{arm}.json"
        if not path.exists():
            print(f"{arm}: running configs/hall.toml", flush=True)
            env = {**os.environ, **ARMS[arm]}
            seed = [] if args.seed is None else ["--seed", str(args.seed)]
            subprocess.run([sys.executable, __file__, "--arm", arm, "--work", str(args.work.with_name(
                args.work.name.removesuffix(f"_seed{args.seed}"))), *seed], env=env, check=True, cwd=HERE)
        arms[arm] = json.loads(path.read_text())
        a = arms[arm]
        print(f"{arm}: {a['wall_s']:.0f} s, training by round {[round(s) for s in a['training_s_by_round']]}, "
              f"held-out mean {a['heldout_mean']:.4f}", flush=True)
        command = "python bench/campaign_time.py" + (f" --seed {args.seed}" if args.seed is not None else "")
        write_result(name, {"description": __doc__.splitlines()[0], "machine": machine(), "seed": args.seed,
                            "command": command, **arms, **summary(arms)})


if __name__ == "__main__":
    main()
