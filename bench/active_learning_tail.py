"""Active learning where difficulty varies, judged on the tail (issue 23): the simulations each strategy needs
to reach Sobol's final mean and final p95 test error, on two spaces.

Spaces: configs/active_learning.toml (the office of bench/active_learning.py: source x and y, inlet speed,
release time; kept as it is for continuity) and configs/active_learning_exhaust.toml (the same office, the
exhaust's position along its wall instead of the release time: the geometry moves, so how hard a case is
varies across the space; the file says why). Strategies: ``sobol`` (the reference), ``variance``,
``error_ivr``, ``tail`` (variance reduction weighted by the chance of lying in the top 5 % of the error:
aimed at the p95) and two bounds: ``oracle_worst`` simulates each round the test cases the current
model gets worst (so by the end it has trained on its own test set: an optimistic bound) and
``oracle_pool`` the worst of a pool of 48 simulated cases disjoint from the test set (the fair bound on
what choosing cases can buy); 3 seeds; the library's learner (``--learner``). Each campaign is run by
bench/active_learning.py's own functions, on its protocol (8 Sobol cases, rounds of 4 up to 32, a test set
of 24 uniform random cases per space).

Result (bench/results/active_learning_tail.json): ``spaces``: {space: {strategy: {``sims_to_sobol_mean``,
``sims_to_sobol_p95`` (fractions of Sobol's budget on seed-mean curves; None: never reached), the same for
the worst seed (``..._worst_seed``, each seed against the same seed's Sobol), ``final_mean``,
``final_p95``, ``final_worst``, the planner's own cost: ``mean_propose_s`` (one proposal) and
``propose_s_per_campaign`` beside ``sim_cpu_s_saved_p95`` (the simulations it did not need to reach Sobol's
p95, at the space's mean ``simulation_cpu_s``), ``seeds``}}}; ``sobol_final`` (Sobol's final mean and p95 and its
budget, per space); ``curves`` (seed-mean test error per round: mean, p95, worst); ``runs``; ``settings``,
``machine``, ``complete``. Resumable: every campaign is cached under ``--work`` (as bench/active_learning.py
caches it) and the result is rewritten after each one, over the seeds every strategy of a space has
finished (seeds run outermost), so an interrupted study resumes where it stopped and its file says what
is done.

    flock /tmp/closedloop-heavy.lock nice .venv/bin/python bench/active_learning_tail.py

A check (one seed, two strategies, 12 simulations, 6 test cases; minutes):

    .venv/bin/python bench/active_learning_tail.py --budget 12 --seeds 0 --strategies sobol,variance \\
        --test-cases 6 --work /tmp/al-tail-check --results /tmp/al-tail-check-results
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from closedloop.lab.store import CampaignStore

import active_learning as al
from active_learning_parts import summary
from common import RESULTS, machine, write_result

HERE = Path(__file__).resolve().parent
SPACES = (HERE.parent / "configs" / "active_learning.toml", HERE.parent / "configs" / "active_learning_exhaust.toml")
STRATEGIES = ("sobol", "variance", "error_ivr", "tail", "oracle_worst", "oracle_pool")
KEYS = ("sims_to_sobol_mean", "sims_to_sobol_p95", "sims_to_sobol_mean_worst_seed", "sims_to_sobol_p95_worst_seed",
        "final_mean", "final_p95", "final_worst", "mean_propose_s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", type=lambda s: [Path(p) for p in s.split(",")], default=list(SPACES),
                    help="comma-separated campaign configs (default: the office and the moving exhaust)")
    ap.add_argument("--strategies", type=lambda s: s.split(","), default=list(STRATEGIES),
                    help=f"comma-separated, sobol among them (default {','.join(STRATEGIES)})")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--budget", type=int, help="simulations per campaign (default: the config's, 32)")
    ap.add_argument("--test-cases", type=int, default=24)
    ap.add_argument("--name", default="active_learning_tail", help="result name (NAME.json)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where NAME.json and its figures go")
    ap.add_argument("--work", type=Path, default=HERE / "data" / "active_learning",
                    help="campaign directories, shared cases and cached initial fits (shared with active_learning.py)")
    args = ap.parse_args(argv)
    unknown = set(args.strategies) - set(al.LABELS)
    if unknown:
        ap.error(f"--strategies: unknown {sorted(unknown)}; choose from {', '.join(al.LABELS)}")
    if "sobol" not in args.strategies:
        ap.error("--strategies: include sobol, the reference of the headline")
    args.strategies = ["sobol", *(s for s in args.strategies if s != "sobol")]
    return args


def driver_args(args: argparse.Namespace, config: Path) -> argparse.Namespace:
    """bench/active_learning.py's options for one space: the library's learner, this study's size."""
    argv = ["--learner", "--config", str(config), "--strategies", ",".join(args.strategies),
            "--seeds", ",".join(map(str, args.seeds)), "--test-cases", str(args.test_cases), "--work", str(args.work)]
    return al.parse_args(argv + (["--budget", str(args.budget)] if args.budget else []))


def finished(results: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The runs of the seeds every strategy has finished (seeds run in order, so a prefix)."""
    done = min(len(runs) for runs in results.values())
    return {s: runs[:done] for s, runs in results.items()}


def simulation_cpu_s(study: al.Study) -> float | None:
    """Mean CPU-seconds of one reference simulation over every campaign ledger of ``study``'s space (the
    price a planner's proposal seconds are weighed against); None before any campaign has run."""
    seconds = [s for ledger in sorted((study.work / "runs" / study.base.name).glob("*/ledger.parquet"))
               for s in CampaignStore.existing(ledger.parent).read_ledger()["cpu_seconds"].dropna()]
    return statistics.mean(seconds) if seconds else None


def space_result(results: dict[str, list[dict]], sim_cpu_s: float | None) -> dict:
    """One space's headline, Sobol's final and the seed-mean curves (empty before a seed is finished).
    Per strategy also the planner's own cost: ``propose_s_per_campaign`` (the seconds of all its proposals
    in one campaign, mean over seeds) beside ``sim_cpu_s_saved_p95`` (the CPU-seconds of the simulations it
    did not need to reach Sobol's final p95, at the space's mean price of one simulation; None when it
    never reaches it)."""
    results = finished(results)
    if not results["sobol"]:
        return {"strategies": {}, "sobol_final": None, "curves": None, "simulation_cpu_s": sim_cpu_s}
    head = summary.headline(results)
    curves = {"n_sims": results["sobol"][0]["n"],
              **{name: summary.seed_mean(results, f"test_{name}") for name in ("mean", "p95", "worst")}}
    budget = curves["n_sims"][-1]

    def cost(s: str) -> dict:
        reach = head[s]["sims_to_sobol_p95"]
        saved = None if reach is None or sim_cpu_s is None else (1 - reach) * budget * sim_cpu_s
        return {"propose_s_per_campaign": statistics.mean(sum(r["propose_s"]) for r in results[s]),
                "sim_cpu_s_saved_p95": saved}

    return {"strategies": {s: {**{k: head[s][k] for k in KEYS}, **cost(s), "seeds": len(results[s])}
                           for s in results},
            "sobol_final": {"mean": head["sobol"]["final_mean"], "p95": head["sobol"]["final_p95"],
                            "budget": budget},
            "curves": curves, "simulation_cpu_s": sim_cpu_s}


def payload(args: argparse.Namespace, studies: dict[str, al.Study], results: dict[str, dict[str, list[dict]]],
            figures: list[str], t_start: float) -> dict:
    per_space = {space: space_result(runs, simulation_cpu_s(studies[space])) for space, runs in results.items()}
    complete = len(results) == len(args.spaces) and all(
        len(runs) == len(args.seeds) for by_label in results.values() for runs in by_label.values())
    first = next(iter(studies.values()))
    b = first.base.budget
    return {
        "description": __doc__.split("\n\n")[0].replace("\n", " "),
        "spaces": {space: r["strategies"] for space, r in per_space.items()},
        "sobol_final": {space: r["sobol_final"] for space, r in per_space.items()},
        "curves": {space: r["curves"] for space, r in per_space.items()},
        "simulation_cpu_s": {space: r["simulation_cpu_s"] for space, r in per_space.items()},
        "runs": results,
        "settings": {
            "spaces": {name: {"config": al.shown(args.spaces[k]),
                              "design": {p.name: {"path": p.path, "low": p.low, "high": p.high}
                                         for p in s.base.design.parameters}}
                       for k, (name, s) in enumerate(studies.items())},
            "strategies": args.strategies, "seeds": args.seeds, "learner": first.learner.describe(first.base),
            "budget": f"{b.initial_cases} initial Sobol + rounds of {b.batch_size} up to {b.max_cases} simulations",
            "test_set": {"n": args.test_cases, "seed": al.TEST_SEED},
            "target": "sims_to_sobol_*: the first simulation count at which the seed-mean curve is at or below "
                      "Sobol's final seed-mean value, as a fraction of Sobol's budget (None: never)"},
        "complete": complete, "figures": figures, "wall_seconds": time.perf_counter() - t_start,
        "machine": machine(), "load_average_at_end": os.getloadavg(),
        "command": " ".join(["python", "bench/active_learning_tail.py", *sys.argv[1:]]),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    studies: dict[str, al.Study] = {}
    results: dict[str, dict[str, list[dict]]] = {}
    figures: list[str] = []
    for config in args.spaces:
        study = al.make_study(driver_args(args, config))
        space = study.base.name
        studies[space], results[space] = study, {label: [] for label in args.strategies}
        for seed in args.seeds:
            for label in args.strategies:
                t0 = time.perf_counter()
                run = al.cached_run(study, label, seed)
                results[space][label].append(run)
                print(f"{space} {label} seed {seed}: final mean {run['test_mean'][-1]:.4f} p95 "
                      f"{run['test_p95'][-1]:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
                write_result(args.name, payload(args, studies, results, figures, t_start), args.results)
        figures += summary.figures(results[space], len(args.seeds), args.results, f"{args.name}_{space}", space)
    final = payload(args, studies, results, figures, t_start)
    path = write_result(args.name, final, args.results)
    for space, by_strategy in final["spaces"].items():
        print(f"{space}: " + "; ".join(f"{s} mean {summary.share(h['sims_to_sobol_mean'])} "
                                       f"p95 {summary.share(h['sims_to_sobol_p95'])}" for s, h in by_strategy.items()))
    print(f"wrote {path} in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
