"""Active learning vs space-filling designs: reference simulations needed for a given surrogate accuracy.

Scenario space (``--config``, default configs/active_learning.toml; 4 dimensions, reduced to fit 2
shared CPU cores): the small office configs/scenarios/room.toml (10 × 6 × 3 m, 0.5 m cells: 20 × 12 × 6,
potential flow, TVD + SSP-RK2, 120 s horizon, outputs every 10 s) instead of the hall (a hall case needs
a ~45 s Navier–Stokes solve per inlet speed); the design is source x ∈ [1, 9] m, source y ∈
[0.75, 5.25] m, inlet speed ∈ [0.2, 1.5] m/s and release time ∈ [0, 60] s, infeasible where the source
lies inside the pillar. configs/active_learning_exhaust.toml is the same office with the exhaust's
position along its wall instead of the release time: the geometry moves, so the difficulty varies
across the space (the file says why). The default learner is the surrogate this study first used (4
hidden channels, band-alone upwind physics, the additive closure, 20 epochs at lr 3e-3 on the initial
design, 8-epoch warm starts at lr 1e-3: bench/active_learning_parts/learners.py); ``--learner`` is the
config as shipped, the library's learner. Training keeps the best weights by training loss.

Protocol: a held-out test set of 24 uniform random feasible cases (its own seed, never proposed by
any strategy), every strategy from the same 8-case Sobol start per seed, then rounds of 4 up to
32 simulations, 3 seeds. Each round: validate the new cases with the current model (predict before
training; that log error feeds the error GP), warm-start retrain on every case, measure the test
error (relative L2 over time and plane, mean, p95 and worst over the test set).

How a run is driven: each (strategy, seed) is a campaign of the ``--config`` file (seed, planner and
learner set on top with ``with_overrides``) in its own campaign directory under ``--work``/runs/NAME/
(NAME: the config's ``name``; the test set's ledger in ``--work``/heldout_NAME, so two spaces never
share a directory), run round by round through the campaign flow's own steps
(``closedloop.lab.campaign``): ``round_proposals`` (the Sobol design, then the registered strategy,
given the surrogate's score where the strategy's ``needs`` ask for one), ``run_case``,
``validate_cases``, ``retrain_round`` and ``stop_reason``. Every run's ``cases/`` is one shared
directory, so a point that several strategies, seeds or the test set pick is simulated once; a
finished run is kept with its result (``result.json``) under a hash of its config, so a re-run
recomputes only what changed (a result written before the p95 was recorded is run again). What the
library does not have lives in bench/active_learning_parts/, benchmark-only: the test set and the
oracles, the learner variants, the probes and the summary. The results in bench/results/ were written
by the driver before it used the library (commit 9467922, its own loop): on the same settings this one
reproduces its ``--learner`` runs exactly; the default and ``--stable`` warm starts now take the
library's schedule, which ramps the rate up over 5 optimiser steps (the old ones had no ramp).

Strategies: ``sobol``, ``random``, ``error`` (GP on log validation error + qUCB), ``error_ivr``
(the same GP, error-weighted integrated variance reduction), ``variance`` (closed-form greedy
integrated-variance reduction), ``ensemble`` (disagreement of a snapshot ensemble: the models of the
last three rounds, scored on 128 Sobol candidates), ``tail`` (the error GP, the reduction weighted by
each point's chance of lying in the top 5 % of the log error: aimed at the p95; run when named),
``information`` (D-optimal on the surrogate's own parameters: the current model's Fisher information
sketched in 16 random parameter directions for the cases run and 128 Sobol candidates, greedy log-det
batch; run when named). Oracles (``oracle_worst``, ``oracle_spread``; bounds, not planners; run when
named): each round simulates 4 cases *of the test set itself*, the worst under the current model or
the farthest from the cases run; so by the last round the model has trained on the cases it is judged
on. ``oracle_pool`` is the fair bound on choosing cases: the worst under the current model of a pool of
48 simulated uniform random cases of their own seed, disjoint from the test set. Headline: for each
strategy, the simulations its seed-mean curve needs to reach Sobol's final seed-mean test error; as fractions of Sobol's budget, those to reach
Sobol's final mean (``sims_to_sobol_mean``) and final p95 (``sims_to_sobol_p95``), and the worst
seed's (each seed against the same seed's Sobol); None where never reached. Also measured: the
latency of one proposal (q = 4, 200 observed points, 4 and 6 dimensions; not with ``--budget`` or
``--learner``). bench/active_learning_tail.py runs the tail study (both spaces, judged on the p95).

Learners (bench/active_learning_parts/learners.py): the default above; ``--stable`` (10 warm-start
epochs at lr 3e-4, results to active_learning_stable.json); ``--learner`` (room layers, TVD, learned
sink, multiplicative closure with gain 0.05, a staged initial fit, 4-epoch warm starts of mini-batches
of 2 cases; results to active_learning_learner.json). ``--warm-epochs N``: N warm-start epochs per
round. ``--control`` (with ``--learner``): the same warm starts on the initial 8 cases only.
``--sketch-check``: one ``information`` proposal per seed with forward and with central differences
side by side (results to active_learning_sketch.json).

Selection and size: ``--strategies a,b``, ``--seeds 0,1``, ``--budget N`` (writes ``_partial`` into the
name), ``--quick`` (one seed, budget 16, sobol and error), ``--epochs N`` (initial-fit epochs),
``--test-cases N``. ``--name NAME`` writes NAME.json (and figures) instead of the default name;
``--results DIR`` writes them to DIR instead of bench/results; ``--config PATH`` runs that space (the
default name starts with its ``name``); ``--work DIR`` holds the campaign directories and the shared
cases (default bench/data/active_learning).

    .venv/bin/python bench/active_learning.py --quick --work /tmp/al --results /tmp/al-results
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from closedloop.lab import campaign as steps
from closedloop.lab import timing
from closedloop.lab.config import CampaignConfig, load_campaign_config
from closedloop.lab.store import CampaignStore

from active_learning_parts import probes, summary
from active_learning_parts.heldout import ORACLES, POOL_ORACLES, HeldOut, held_out, oracle_round, p95, shared_store
from active_learning_parts.learners import LEARNERS, Learner, complete_round
from common import RESULTS, machine, write_result

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "active_learning.toml"
TEST_SEED = 2026
# label -> the planner on top of the config (an oracle's round 0 is the same Sobol start)
PLANNERS = {"sobol": {"planner.strategy": "sobol"}, "random": {"planner.strategy": "random"},
            "error": {"planner.strategy": "error"},
            "error_ivr": {"planner.strategy": "error", "planner.acquisition": "error_ivr"},
            "variance": {"planner.strategy": "variance"}, "tail": {"planner.strategy": "tail"},
            "ensemble": {"planner.strategy": "ensemble"},
            "information": {"planner.strategy": "information"}}
LABELS = (*PLANNERS, *ORACLES)
RUN_BY_DEFAULT = ("sobol", "random", "error", "error_ivr", "variance", "ensemble")  # information: 93 s a proposal


@dataclass
class Study:
    """The campaign every run starts from (config, learner and budget applied), where runs live, the test set."""

    base: CampaignConfig
    learner: Learner
    work: Path
    test: HeldOut
    _pool: HeldOut | None = None

    def candidates(self, label: str) -> HeldOut:
        """The cases oracle ``label`` chooses from: the test set, or for a pool oracle twice as many
        uniform random cases of their own seed (simulated once, kept under ``work``)."""
        if label not in POOL_ORACLES:
            return self.test
        if self._pool is None:
            self._pool = held_out(self.base, self.work, 2 * len(self.test.points), TEST_SEED + 1,
                                  name=f"pool_{self.base.name}")
        return self._pool

    def config(self, label: str, seed: int) -> CampaignConfig:
        return self.base.with_overrides(seed=seed, **PLANNERS.get(label, {}))

    def key(self, label: str, seed: int) -> str:
        what = [label, self.config(label, seed).model_dump(mode="json"), dataclasses.asdict(self.learner),
                len(self.test.points), self.test.seed]
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def run_campaign(study: Study, label: str, config: CampaignConfig, store: CampaignStore) -> dict:
    """One campaign of ``label``: test error after each round, chosen points, proposal and training seconds."""
    space = config.design.space()
    curve: dict[str, list] = {k: [] for k in ("n", "test_mean", "test_p95", "test_worst", "rounds", "propose_s",
                                              "best_epoch", "train_s")}
    candidate_errors, used = None, set()
    candidates = study.candidates(label) if label in ORACLES else None
    for r in range(config.budget.rounds):
        t0 = time.perf_counter()
        if candidates is not None and r > 0:
            batch = oracle_round(label, config, store, r, candidates, candidate_errors, used)
        else:
            batch, _ = steps.round_proposals(config, store, r)
        if r > 0:
            curve["propose_s"].append(time.perf_counter() - t0)
        best_epoch, seconds = complete_round(study.learner, config, store, r, batch, study.work / "initial")
        model = steps.model_for_round(config, store, r, [])
        errors = study.test.errors(model)
        if candidates is not None:
            candidate_errors = errors if candidates is study.test else candidates.errors(model)
        ledger = store.read_ledger()
        for key, value in (("n", len(ledger)), ("test_mean", float(errors.mean())), ("test_p95", p95(errors)),
                           ("test_worst", float(errors.max())),
                           ("rounds", [[p[name] for name in space.names] for p in batch]),
                           ("best_epoch", best_epoch), ("train_s", seconds)):
            curve[key].append(value)
        if steps.stop_reason(config, ledger, r):
            break
    return curve


def cached_run(study: Study, label: str, seed: int) -> dict:
    """A finished run's result, or the run (an unfinished directory, or a result without the p95, is
    started afresh)."""
    name = f"runs/{study.base.name}/{label}_{seed}_{study.key(label, seed)}"
    done = study.work / name / "result.json"
    if done.is_file():
        cached = json.loads(done.read_text())
        if "test_p95" in cached:
            return cached
    out = run_campaign(study, label, study.config(label, seed), shared_store(study.work, name, fresh=True))
    done.write_text(json.dumps(out))
    return out


def shown(path: Path) -> str:
    """A config's path as the result records it: relative to the repository when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(HERE.parent)) if resolved.is_relative_to(HERE.parent) else str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=CONFIG, help="the space: a campaign config (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="one seed, budget 16, sobol and error (a smoke run)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--learner", action="store_true", help="the learner that changes with each batch")
    which.add_argument("--stable", action="store_true", help="a gentler warm start (10 epochs at lr 3e-4)")
    ap.add_argument("--strategies", type=lambda s: s.split(","), help=f"comma-separated, of {', '.join(LABELS)}")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--budget", type=int, help="simulations per campaign (default 32; 16 with --quick)")
    ap.add_argument("--epochs", type=int, help="epochs of the initial fit (default: the learner's)")
    ap.add_argument("--warm-epochs", type=int, help="warm-start epochs per round (default: the learner's)")
    ap.add_argument("--differences", choices=("forward", "central"), help="the information sketch's differences")
    ap.add_argument("--test-cases", type=int, default=24)
    ap.add_argument("--control", action="store_true", help="with --learner: warm starts without new data")
    ap.add_argument("--sketch-check", action="store_true", help="forward vs central differences, one proposal")
    ap.add_argument("--name", help="result name (default from the options)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where NAME.json and its figures go")
    ap.add_argument("--work", type=Path, default=HERE / "data" / "active_learning",
                    help="campaign directories, shared cases and cached initial fits")
    args = ap.parse_args(argv)
    unknown = set(args.strategies or ()) - set(LABELS)
    if unknown:
        ap.error(f"--strategies: unknown {sorted(unknown)}; choose from {', '.join(LABELS)}")
    if args.strategies and "sobol" not in args.strategies and not args.sketch_check:
        ap.error("--strategies: include sobol, the reference of the headline")
    if args.control and not args.learner:
        ap.error("--control goes with --learner")
    return args


def make_study(args: argparse.Namespace) -> Study:
    learner = LEARNERS["learner" if args.learner else "stable" if args.stable else "default"]
    config = learner.configure(load_campaign_config(args.config), epochs=args.epochs,
                               warm_start_epochs=args.warm_epochs)
    budget = args.budget or (16 if args.quick else config.budget.max_cases)
    b = config.budget
    config = config.with_overrides(**{"budget.max_cases": budget,
                                      "budget.rounds": 1 + math.ceil((budget - b.initial_cases) / b.batch_size)})
    if args.differences:
        config = config.with_overrides(**{"planner.information_differences": args.differences})
    test = held_out(config, args.work, args.test_cases, TEST_SEED, name=f"heldout_{config.name}")
    return Study(config, learner, args.work, test)


def result_name(args: argparse.Namespace, space: str) -> str:
    """``--name``, or the config's name (the space) and the options."""
    return args.name or (space + ("_quick" if args.quick else "") + ("_stable" if args.stable else "")
                         + ("_learner" if args.learner else "") + ("_partial" if args.budget and not args.quick else ""))


def run_study(study: Study, labels: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {}
    for label in labels:
        results[label] = []
        for seed in seeds:
            t0 = time.perf_counter()
            run = cached_run(study, label, seed)
            results[label].append(run)
            print(f"{label} seed {seed}: final mean {run['test_mean'][-1]:.4f} p95 {run['test_p95'][-1]:.4f} "
                  f"worst {run['test_worst'][-1]:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return results


def sketch_result(study: Study, seeds: list[int]) -> dict:
    rows = {}
    for s in seeds:
        r = rows[str(s)] = probes.sketch_check(study.learner, study.config("information", s), study.work)
        print(f"seed {s}: forward {r['seconds']['forward']:.1f} s, central {r['seconds']['central']:.1f} s, "
              f"same batch {r['same_batch']}, max rel. difference {r['info_max_relative_difference']:.1e}")
    return {"description": probes.sketch_check.__doc__.split("\n\n")[0],
            "directions": study.base.planner.information_directions, "candidates": study.base.planner.candidates,
            "seeds": rows}


def study_result(args: argparse.Namespace, study: Study, seeds: list[int], results: dict[str, list[dict]]) -> dict:
    """The result file's content (keys as docs/build.py reads them), figures written beside it."""
    n, mean_curve, worst_curve = summary.curves(results)
    p95_curve = summary.seed_mean(results, "test_p95")
    diagnostics = summary.diagnose(results)
    if args.control:
        diagnostics["control_no_new_data"] = {
            str(s): probes.no_new_data(study.learner, study.config("sobol", s), study.test, study.work) for s in seeds}
    settings = study.base.planner.settings()
    measure_latency = not (args.budget or args.learner)  # learner-independent
    b = study.base.budget
    return {
        "description": __doc__.split("\n\n")[0],
        "space": {"name": study.base.name, "config": shown(args.config)},
        "reductions": {"scenario": "configs/scenarios/room.toml (20x12x6 cells, 0.5 m), potential flow, "
                                   "TVD + SSP-RK2, horizon 120 s, outputs every 10 s (instead of the hall)",
                       "surrogate": study.learner.describe(study.base),
                       "budget": f"{b.initial_cases} initial Sobol + rounds of {b.batch_size} up to {b.max_cases} "
                                 "simulations",
                       "seeds": list(seeds), "campaign": study.base.model_dump(mode="json", exclude={"scenario"})},
        "design": {p.name: {"path": p.path, "low": p.low, "high": p.high} for p in study.base.design.parameters},
        "test_set": {"n": len(study.test.points), "seed": TEST_SEED, "points": study.test.points.tolist()},
        "settings": dataclasses.asdict(settings),
        "n_sims": n, "mean_curve": mean_curve, "p95_curve": p95_curve, "worst_curve": worst_curve,
        "sobol_final_mean": mean_curve["sobol"][-1], "sobol_final_p95": p95_curve["sobol"][-1],
        "headline": summary.headline(results), "diagnostics": diagnostics, "runs": results,
        "latency_q4_n200": {f"{d}d": probes.latency(settings, d) for d in (4, 6)} if measure_latency else {},
        "figures": summary.figures(results, len(seeds), args.results, result_name(args, study.base.name),
                                   study.base.name),
        "quick": args.quick, "learner": args.learner,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    simulated: list[float] = []  # seconds of each reference simulation run (the library's step timings)

    def count(step: str, start: float, end: float) -> None:
        if step == "simulation":
            simulated.append(end - start)

    with timing.listening(count):
        study = make_study(args)
        seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
        if args.sketch_check:
            name, payload = "active_learning_sketch", sketch_result(study, seeds)
        else:
            labels = args.strategies or (["sobol", "error"] if args.quick else list(RUN_BY_DEFAULT))
            results = run_study(study, labels, seeds)
            name, payload = result_name(args, study.base.name), study_result(args, study, seeds, results)
            payload.update({"reference_simulations_run": len(simulated), "reference_seconds": sum(simulated),
                            "wall_seconds": time.perf_counter() - t_start})
    command = " ".join(["python", "bench/active_learning.py", *(sys.argv[1:] if argv is None else argv)])
    payload.update({"machine": machine(), "load_average_at_end": os.getloadavg(), "command": command})
    path = write_result(name, payload, args.results)
    if not args.sketch_check:
        summary.print_tables(payload)
    print(f"wrote {path} in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
