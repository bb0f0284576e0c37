"""Active learning vs space-filling designs: reference simulations needed for a given surrogate accuracy.

Scenario space (4 dimensions, reduced to fit 2 shared CPU cores): the small office
configs/scenarios/room.toml (10 × 6 × 3 m, 0.5 m cells: 20 × 12 × 6, potential flow, TVD +
SSP-RK2, 120 s horizon, outputs every 10 s) instead of the hall (a hall case needs a ~45 s
Navier–Stokes solve per inlet speed); the design is source x ∈ [1, 9] m, source y ∈ [0.75, 5.25] m,
inlet speed ∈ [0.2, 1.5] m/s and release time ∈ [0, 60] s, infeasible where the source lies inside
the pillar. The surrogate is the hybrid model, reduced to 4 hidden channels, trained 15 epochs on
the initial design (lr 3e-3) and warm-started for 8 epochs per round (lr 1e-3, no warm-up); the
campaign uses 8 channels and 30/15 epochs. Training keeps the best weights by training loss.

Protocol: a held-out test set of 24 uniform random feasible cases (its own seed, never proposed by
any strategy), every strategy from the same 8-case Sobol start per seed, then rounds of 4 up to
32 simulations, 3 seeds. Each round: validate the new cases with the current model (predict before
training; that log error feeds the error GP), warm-start retrain on every case, measure the test
error (relative L2 over time and plane, mean and worst over the test set). Reference simulations
are cached by case id on disk, so strategies and seeds that pick the same point share it.

Strategies: ``sobol``, ``random``, ``error`` (GP on log validation error + qUCB), ``error_ivr``
(the same GP, error-weighted integrated variance reduction), ``variance`` (closed-form greedy
integrated-variance reduction), ``ensemble`` (disagreement of a snapshot ensemble: the models of the
last three rounds, scored on 128 Sobol candidates). Each finished run is cached in
bench/data/active_learning/runs/ under a hash of the protocol, so a re-run recomputes only what changed.
Headline: for each strategy, the simulations its seed-mean curve needs to reach Sobol's final
seed-mean test error. Also measured: the latency of one proposal (q = 4, 200 observed points,
4 and 6 dimensions). ``--quick``: one seed, budget 16, for a smoke run. ``--stable``: warm start with
10 epochs at lr 3e-4 (results to active_learning_stable.json).

``--learner`` (results to active_learning_learner.json; the default learner above is unchanged, so the
old JSONs stay reproducible): a learner that changes with each batch. The room layers below and above
the band (``spec_for(..., room_layers=True)``), TVD advection, a learned sink, and the multiplicative
closure c·(1 + g·tanh M) with g = 0.05 (a small per-step factor, so early closure steps cannot compound
into a large rollout error). Initial design: a physics stage (closure frozen, D/λ/layer fields at lr
1e-2, 10 epochs) then the closure stage (lr 1e-3, physics fields 1e-3, mini-batches of 2 cases,
full 120 s horizon, 20 epochs; trained once per seed, cached in bench/data/active_learning/initial/,
shared by all strategies). Each warm start: 4 epochs of the closure stage on all cases, i.e.
(cases / 2) × 3 TBPTT segments = 18–48 optimiser steps per epoch instead of 3 (72–192 per round).
Weights are kept at the best full-horizon training loss (no validation cases to spare). Each round
records its warm start's best epoch (-1: the starting weights were kept, the model did not change).
``--strategies a,b``, ``--seeds 0,1`` and ``--budget N`` select a subset (``--budget`` writes ``_partial`` into the name);
the proposal latency is not re-measured with ``--learner`` (it does not depend on the learner).
``--learner --control`` adds the control: the same warm starts on the initial 8 cases only.
``information`` (D-optimal on the surrogate's own parameters): each round, the current model's Fisher
information sketched in 16 random parameter directions (``surrogates.sensitivity.fisher_sketch``) for
the cases run and 128 Sobol candidates, then the greedy log-det batch (``planners.information``).
``--warm-epochs N`` (with ``--learner``): N warm-start epochs per round instead of 4, from the same
cached initial fits. Oracles (``--strategies oracle_worst,oracle_spread``; bounds, not planners): each
round simulates 4 cases *of the test set itself*, the worst under the current model or the farthest
from the cases run, so their test error is partly in-sample: a floor for what any choice of cases
could reach with this learner. ``--sketch-check``: one ``information`` proposal per seed with forward
and with central differences side by side (results to active_learning_sketch.json).
``--name NAME`` writes bench/results/NAME.json (and figures) instead of the default name.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from closedloop.surrogates.coupling import plane_problem, spec_for  # noqa: E402
from closedloop.planners.design import DesignSpace, random_design, sobol_design  # noqa: E402
from closedloop.planners.ensemble import disagreement  # noqa: E402
from closedloop.planners.strategies import STRATEGIES, Evidence, PlannerSettings, propose  # noqa: E402
from closedloop.simulators import load_scenario, simulate  # noqa: E402
from closedloop.simulators.scenario import Scenario  # noqa: E402
from closedloop.surrogates import (Forcing, HybridSurrogate, SurrogateSpec, TrainConfig,  # noqa: E402
                                   relative_l2, train)
from closedloop.surrogates.sensitivity import fisher_sketch  # noqa: E402
from closedloop.surrogates.training import TrainReport  # noqa: E402

from common import RESULTS, machine, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / "data" / "active_learning"
QUICK = "--quick" in sys.argv
LEARNER = "--learner" in sys.argv  # the improved learner (module docstring)


def _option(name: str, default: str | None) -> str | None:
    """``--name value`` from the command line (the old flags stay bare switches)."""
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


PARAMS = {"source_x": ("source.x", 1.0, 9.0), "source_y": ("source.y", 0.75, 5.25),
          "inlet_speed": ("inlets.0.speed", 0.2, 1.5), "release_time": ("source.start", 0.0, 60.0)}
SPACE = DesignSpace(names=tuple(PARAMS), lower=tuple(v[1] for v in PARAMS.values()),
                    upper=tuple(v[2] for v in PARAMS.values()))
N_TEST, TEST_SEED = 24, 2026
INITIAL, BATCH = 8, 4
BUDGET = int(_option("--budget", "16" if QUICK else "32"))
SEEDS = tuple(int(v) for v in _option("--seeds", "0" if QUICK else "0,1,2").split(","))
ONLY = _option("--strategies", None)
PARTIAL = "--budget" in sys.argv  # a shorter campaign than the protocol's (strategy/seed subsets are recorded)
HIDDEN, EPOCHS, WARM_EPOCHS, LR, WARM_LR = 4, 20, 8, 3e-3, 1e-3
STABLE = "--stable" in sys.argv  # a gentler warm start (fewer rounds where retraining changes nothing)
if STABLE:
    WARM_EPOCHS, WARM_LR = 10, 3e-4
# --learner: physics stage, closure stage, warm start (module docstring)
PHYS_EPOCHS, PHYS_LR, CLOSURE_LR, GAIN, MINI_BATCH, TBPTT = 10, 1e-2, 1e-3, 0.05, 2, 4
if LEARNER:
    EPOCHS, WARM_EPOCHS, LR, WARM_LR = 20, 4, CLOSURE_LR, CLOSURE_LR
LEARNER_WARM_EPOCHS = WARM_EPOCHS  # the recorded learner runs' warm start (their initial fits are shared)
WARM_EPOCHS = int(_option("--warm-epochs", str(WARM_EPOCHS)))  # --learner --warm-epochs N: a longer warm start
NAME = _option("--name", None) or ("active_learning" + ("_quick" if QUICK else "") + ("_stable" if STABLE else "")
                                   + ("_learner" if LEARNER else "") + ("_partial" if PARTIAL and not QUICK else ""))
ENSEMBLE_MEMBERS, CANDIDATES = 3, 128
SETTINGS = PlannerSettings(acquisition="qucb", beta=4.0, num_restarts=4, raw_samples=128, mc_samples=64,
                           maxiter=50, candidates=CANDIDATES)
BASE = load_scenario(ROOT / "configs" / "scenarios" / "room.toml")
# label -> (strategy, settings)
VARIANTS = {"sobol": ("sobol", SETTINGS), "random": ("random", SETTINGS), "error": ("error", SETTINGS),
            "error_ivr": ("error", dataclasses.replace(SETTINGS, acquisition="error_ivr")),
            "variance": ("variance", SETTINGS), "ensemble": ("ensemble", SETTINGS),
            "information": ("information", SETTINGS),
            # bounds, not planners (run when named): each batch is drawn from the test set itself
            "oracle_worst": ("oracle_worst", SETTINGS), "oracle_spread": ("oracle_spread", SETTINGS)}
ORACLES = ("oracle_worst", "oracle_spread")
FISHER_DIRECTIONS = 16  # K of the sketched Fisher information (strategy "information")
FISHER_DIFFERENCES = _option("--differences", "central")  # the recorded runs used central differences


def run_key(label: str, seed: int, warm_epochs: int | None = None) -> str:
    strategy, settings = VARIANTS[label]
    warm = WARM_EPOCHS if warm_epochs is None else warm_epochs
    protocol = [label, strategy, dataclasses.asdict(settings), seed, INITIAL, BATCH, BUDGET, HIDDEN, EPOCHS,
                warm, LR, WARM_LR, N_TEST, TEST_SEED, ENSEMBLE_MEMBERS, PARAMS, BASE.case_id()]
    if LEARNER:  # old keys unchanged, so the old runs stay cached
        protocol.append(["learner", PHYS_EPOCHS, PHYS_LR, CLOSURE_LR, GAIN, MINI_BATCH, TBPTT])
    if strategy == "information":
        protocol.append(["fisher", FISHER_DIRECTIONS])
        if FISHER_DIFFERENCES != "central":  # the central runs keep their keys
            protocol.append(FISHER_DIFFERENCES)
    return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:12]


def initial_fit_path(seed: int) -> Path:
    """``--learner``'s fit on the initial design: one per seed, shared by every strategy and warm start."""
    return CACHE / "initial" / f"{seed}_{run_key('sobol', seed, warm_epochs=LEARNER_WARM_EPOCHS)}.pt"


def cached_run(label: str, seed: int, refs: "References", test: tuple, test_points: torch.Tensor) -> dict:
    path = CACHE / "runs" / f"{label}_{seed}_{run_key(label, seed)}.json"
    if path.exists():
        return json.loads(path.read_text())
    out = run(label, seed, refs, test, test_points)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def scenario(row: torch.Tensor) -> Scenario:
    return BASE.with_parameters({path: float(v) for (path, _, _), v in zip(PARAMS.values(), row)})


def feasible(x: torch.Tensor) -> torch.Tensor:
    ok = []
    for row in x:
        try:
            scenario(row)
            ok.append(True)
        except ValueError:
            ok.append(False)
    return torch.tensor(ok, dtype=torch.bool)


class References:
    """Reference plane series and plane forcings by case id (simulations cached on disk)."""

    def __init__(self) -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        self.planes: dict[str, torch.Tensor] = {}
        self.forcings: dict[str, Forcing] = {}
        self.n_steps = BASE.time.n_outputs
        self.simulated = 0
        self.sim_seconds = 0.0

    def forcing(self, sc: Scenario) -> Forcing:
        cid = sc.case_id()
        if cid not in self.forcings:
            problem = plane_problem(sc)
            self.problem = problem
            self.forcings[cid] = problem.forcing
        return self.forcings[cid]

    def plane(self, sc: Scenario) -> torch.Tensor:
        cid = sc.case_id()
        if cid not in self.planes:
            path = CACHE / f"{cid}.pt"
            if path.exists():
                self.planes[cid] = torch.load(path, weights_only=True)
            else:
                t0 = time.perf_counter()
                plane = simulate(sc, device="cpu").plane.to(torch.float64)
                self.sim_seconds += time.perf_counter() - t0
                self.simulated += 1
                torch.save(plane, path)
                self.planes[cid] = plane
        return self.planes[cid]

    def batch(self, x: torch.Tensor) -> tuple[Forcing, torch.Tensor]:
        scs = [scenario(r) for r in x]
        return Forcing.stack([self.forcing(s) for s in scs]), torch.stack([self.plane(s) for s in scs])


def test_errors(model: HybridSurrogate, forcing: Forcing, target: torch.Tensor, n_steps: int) -> torch.Tensor:
    with torch.no_grad():
        pred = model.rollout(forcing, n_steps)
    return relative_l2(pred[:, 1:], target[:, 1:])


def learner_spec(problem) -> SurrogateSpec:
    """The default learner: the plane band alone, additive closure. ``--learner``: room layers, TVD,
    learned sink, multiplicative closure with a small gain."""
    if not LEARNER:
        return spec_for(problem, hidden_channels=HIDDEN)
    spec = spec_for(problem, hidden_channels=HIDDEN, learn_sink=True, vertical_exchange=True, room_layers=True)
    return dataclasses.replace(spec, advection="tvd", closure_form="multiplicative", closure_gain=GAIN)


def closure_config(epochs: int, seed: int) -> TrainConfig:
    """``--learner``'s closure stage (initial fit and every warm start): mini-batches over the full
    horizon, the physics fields at the closure's rate, weights kept at the best training loss."""
    return TrainConfig(epochs=epochs, learning_rate=CLOSURE_LR, physics_learning_rate=CLOSURE_LR,
                       batch_size=MINI_BATCH, tbptt_steps=TBPTT, seed=seed)


def first_feasible(points: torch.Tensor, n: int) -> torch.Tensor:
    return points[feasible(points)][:n]


def oracle_batch(label: str, test_points: torch.Tensor, test_err: torch.Tensor, used: set[int],
                 run_points: torch.Tensor, q: int) -> list[int]:
    """Indices of the next ``q`` test cases an oracle would simulate (never one already used).

    ``oracle_worst``: the cases where the current model's test error is highest (the ideal error-seeking
    planner: it knows the true error, with no GP in between). ``oracle_spread``: greedy farthest-point
    order over the test set in the unit cube, away from the cases run (a design drawn from, and spread
    over, the test distribution itself)."""
    free = [i for i in range(len(test_points)) if i not in used]
    if label == "oracle_worst":
        return sorted(free, key=lambda i: -float(test_err[i]))[:q]
    u, ran = SPACE.to_unit(test_points), SPACE.to_unit(run_points)
    chosen: list[int] = []
    for _ in range(q):
        ref = torch.cat([ran, u[chosen]]) if chosen else ran
        dist = torch.cdist(u[free], ref).min(dim=1).values
        chosen.append(free[int(dist.argmax())])
        free.remove(chosen[-1])
    return chosen


def run(label: str, seed: int, refs: References, test: tuple[Forcing, torch.Tensor],
        test_points: torch.Tensor) -> dict:
    """One campaign of strategy ``label``: test error after each round, chosen points, proposal times.

    For an oracle (``ORACLES``) the batches are test cases, so its test error is partly in-sample: a
    bound on what any planner's choice of cases could reach with this learner, not a planner."""
    strategy, settings = VARIANTS[label]
    x = first_feasible(sobol_design(SPACE, 4 * INITIAL, seed=seed), INITIAL)
    forcing, target = refs.batch(x)
    torch.manual_seed(seed)
    model = HybridSurrogate(learner_spec(refs.problem), refs.problem.mask).double()
    log_err = test_errors(model, forcing, target, refs.n_steps).log()
    t0 = time.perf_counter()
    if LEARNER:  # every strategy starts from the same fit per seed: trained once, cached
        start = initial_fit_path(seed)
        if start.exists():
            saved = torch.load(start, weights_only=True)
            model.load_state_dict(saved["state"])
            report = TrainReport(best_epoch=int(saved["best_epoch"]))
        else:
            train(model, forcing, target, TrainConfig(epochs=PHYS_EPOCHS, physics_warmup_epochs=PHYS_EPOCHS,
                                                      physics_learning_rate=PHYS_LR, learning_rate=CLOSURE_LR,
                                                      tbptt_steps=TBPTT, seed=seed))
            report = train(model, forcing, target, closure_config(EPOCHS, seed))
            start.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state": model.state_dict(), "best_epoch": report.best_epoch}, start)
    else:
        report = train(model, forcing, target, TrainConfig(epochs=EPOCHS, learning_rate=LR, seed=seed))
    snapshots = [copy.deepcopy(model)]
    curve = {"n": [len(x)], "test_mean": [], "test_worst": [], "rounds": [x.tolist()], "propose_s": [],
             "best_epoch": [report.best_epoch], "train_s": [time.perf_counter() - t0]}
    err = test_errors(model, *test, refs.n_steps)
    curve["test_mean"].append(float(err.mean()))
    curve["test_worst"].append(float(err.max()))
    r = 0
    used_test: set[int] = set()
    while len(x) < BUDGET:
        r += 1
        t0 = time.perf_counter()
        evidence = Evidence(observed=x, log_error=log_err, existing=x)

        def score(cands: torch.Tensor) -> torch.Tensor:
            f = Forcing.stack([refs.forcing(scenario(c)) for c in cands])
            with torch.no_grad():
                preds = torch.stack([m.rollout(f, refs.n_steps)[:, 1:] for m in snapshots[-ENSEMBLE_MEMBERS:]])
            return disagreement(preds)

        def information(points: torch.Tensor) -> torch.Tensor:
            f = Forcing.stack([refs.forcing(scenario(c)) for c in points])
            return fisher_sketch(model, f, refs.n_steps, k=FISHER_DIRECTIONS, seed=1000 * seed + r,
                                 differences=FISHER_DIFFERENCES)

        if strategy == "ensemble" and len(snapshots) < 2:
            snapshots.insert(0, HybridSurrogate(model.spec, refs.problem.mask).double())  # the untrained model
        # sobol: the initial design's sequence (same seed) continued; points already run are skipped
        if strategy in ORACLES:
            picked = oracle_batch(strategy, test_points, err, used_test, x, BATCH)
            used_test.update(picked)
            new = test_points[picked]
        else:
            new = propose(strategy, SPACE, BATCH, evidence, seed=seed if strategy == "sobol" else 1000 * seed + r,
                          settings=settings, feasible=feasible, ensemble_score=score, information=information)
        curve["propose_s"].append(time.perf_counter() - t0)
        f_new, t_new = refs.batch(new)
        log_err = torch.cat([log_err, test_errors(model, f_new, t_new, refs.n_steps).log()])
        x = torch.cat([x, new])
        forcing, target = refs.batch(x)
        # warm start: lower rate, no warm-up (Adam restarts; at 3e-3 the closure's loss spikes and no
        # epoch beats the starting weights, so the model would never change)
        t0 = time.perf_counter()
        if LEARNER:
            report = train(model, forcing, target, closure_config(WARM_EPOCHS, seed + r))
        else:
            report = train(model, forcing, target, TrainConfig(epochs=WARM_EPOCHS, learning_rate=WARM_LR,
                                                               seed=seed + r, warmup_steps=0))
        curve["best_epoch"].append(report.best_epoch)
        curve["train_s"].append(time.perf_counter() - t0)
        snapshots.append(copy.deepcopy(model))
        err = test_errors(model, *test, refs.n_steps)
        curve["n"].append(len(x))
        curve["test_mean"].append(float(err.mean()))
        curve["test_worst"].append(float(err.max()))
        curve["rounds"].append(new.tolist())
    return curve


def no_new_data(seed: int, refs: References, test: tuple[Forcing, torch.Tensor]) -> dict:
    """Control for ``--learner``: the same warm starts (same configs and seeds per round) on the initial
    8 cases only. What the Sobol curve gains beyond this is the new data; the rest is more training."""
    x = first_feasible(sobol_design(SPACE, 4 * INITIAL, seed=seed), INITIAL)
    forcing, target = refs.batch(x)
    model = HybridSurrogate(learner_spec(refs.problem), refs.problem.mask).double()
    start = initial_fit_path(seed)
    model.load_state_dict(torch.load(start, weights_only=True)["state"])  # cached by the sobol run
    out = {"test_mean": [float(test_errors(model, *test, refs.n_steps).mean())], "best_epoch": []}
    for r in range(1, (BUDGET - INITIAL) // BATCH + 1):
        report = train(model, forcing, target, closure_config(WARM_EPOCHS, seed + r))
        out["best_epoch"].append(report.best_epoch)
        out["test_mean"].append(float(test_errors(model, *test, refs.n_steps).mean()))
    return out


def latency(dim: int, repeats: int = 2) -> dict:
    """Seconds for one proposal of q = 4 from 200 observed points in ``dim`` dimensions (GP fit included)."""
    space = DesignSpace(names=tuple(f"p{i}" for i in range(dim)), lower=(0.0,) * dim, upper=(1.0,) * dim)
    x = random_design(space, 200, seed=dim)
    g = torch.Generator().manual_seed(dim)
    y = (torch.sin(4 * x) * torch.linspace(1, 0.3, dim)).sum(dim=1) + 0.05 * torch.randn(200, generator=g,
                                                                                          dtype=torch.float64)
    out = {}
    for label, strategy, settings in (
            ("error_qucb_lbfgs", "error", SETTINGS),
            ("error_qucb_pool", "error", dataclasses.replace(SETTINGS, optimizer="pool")),
            ("error_qlognei_pool", "error", dataclasses.replace(SETTINGS, acquisition="qlognei", optimizer="pool")),
            ("variance", "variance", SETTINGS)):
        times = []
        for k in range(repeats):
            t0 = time.perf_counter()
            propose(strategy, space, 4, Evidence(observed=x, log_error=y, pending=random_design(space, 4, seed=99)),
                    seed=k, settings=settings)
            times.append(time.perf_counter() - t0)
        out[label] = {"median_s": statistics.median(times), "all_s": times}
    return out


def sketch_check(refs: References) -> dict:
    """``--sketch-check`` (with ``--learner``): one ``information`` proposal per seed from the cached
    initial model, with forward and with central differences side by side (forward first, then central):
    seconds, the batch each picks, and how far the two information matrices differ."""
    out = {}
    for seed in SEEDS:
        x = first_feasible(sobol_design(SPACE, 4 * INITIAL, seed=seed), INITIAL)
        model = HybridSurrogate(learner_spec(refs.problem), refs.problem.mask).double()
        model.load_state_dict(torch.load(initial_fit_path(seed), weights_only=True)["state"])
        row: dict = {"seconds": {}, "batch": {}, "info": {}}
        for scheme in ("forward", "central"):
            def information(points: torch.Tensor, scheme: str = scheme) -> torch.Tensor:
                f = Forcing.stack([refs.forcing(scenario(c)) for c in points])
                info = fisher_sketch(model, f, refs.n_steps, k=FISHER_DIRECTIONS, seed=1000 * seed + 1,
                                     differences=scheme)
                row["info"][scheme] = info
                return info
            t0 = time.perf_counter()
            new = propose("information", SPACE, BATCH, Evidence(observed=x, log_error=torch.zeros(len(x)),
                                                                existing=x),
                          seed=1000 * seed + 1, settings=SETTINGS, feasible=feasible, information=information)
            row["seconds"][scheme] = time.perf_counter() - t0
            row["batch"][scheme] = new.tolist()
        info = row.pop("info")
        a, b = info["forward"], info["central"]
        row["info_max_relative_difference"] = float(((a - b).abs().amax(dim=(1, 2)) / b.abs().amax(dim=(1, 2))).max())
        row["same_batch"] = row["batch"]["forward"] == row["batch"]["central"]
        row["speedup_forward"] = row["seconds"]["central"] / row["seconds"]["forward"]
        out[str(seed)] = row
        print(f"seed {seed}: forward {row['seconds']['forward']:.1f} s, central "
              f"{row['seconds']['central']:.1f} s, same batch {row['same_batch']}, "
              f"max rel. difference {row['info_max_relative_difference']:.1e}", flush=True)
    return out


def sims_to_reach(n: list[int], curve: list[float], target: float) -> int | None:
    for ni, v in zip(n, curve):
        if v <= target * (1 + 1e-9):
            return ni
    return None


def diagnose(results: dict) -> dict:
    """Is a strategy effect measurable? Paired final differences to Sobol (same seed, same start),
    Sobol's own seed spread, and how often a round's retraining left the model unchanged (no epoch
    beat the starting weights, so the test error is exactly the previous round's)."""
    sob = [r["test_mean"][-1] for r in results["sobol"]]
    out = {"sobol_final_mean_by_seed": sob, "sobol_seed_spread": max(sob) - min(sob), "strategies": {}}
    for s, runs in results.items():
        steps = [(a, b) for r in runs for a, b in zip(r["test_mean"], r["test_mean"][1:])]
        paired = [r["test_mean"][-1] - b for r, b in zip(runs, sob)]
        out["strategies"][s] = {
            "final_minus_sobol_by_seed": paired, "mean_final_minus_sobol": statistics.mean(paired),
            "rounds_model_unchanged_fraction": sum(a == b for a, b in steps) / len(steps),
            "rounds_test_error_rose_fraction": sum(b > a for a, b in steps) / len(steps)}
        kept = [e for r in runs for e in r.get("best_epoch", [])[1:]]  # warm starts only
        if kept:
            row = out["strategies"][s]
            row["warm_starts_kept_starting_weights_fraction"] = sum(e < 0 for e in kept) / len(kept)
            row["mean_train_s_per_round"] = statistics.mean(t for r in runs for t in r["train_s"][1:])
    return out


def figures(results: dict) -> list[str]:
    names = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for strategy, runs in results.items():
        n = runs[0]["n"]
        for ax, key in zip(axes, ("test_mean", "test_worst")):
            vals = torch.tensor([r[key] for r in runs])
            ax.plot(n, vals.mean(0), marker="o", ms=3, label=strategy)
            ax.fill_between(n, vals.min(0).values, vals.max(0).values, alpha=0.15)
    for ax, title in zip(axes, ("mean test relative L2", "worst test relative L2")):
        ax.set_xlabel("reference simulations")
        ax.set_ylabel(title)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Active learning on the room space (seed mean; band: min-max over {len(SEEDS)} seeds)")
    fig.tight_layout()
    path = RESULTS / f"{NAME}_curves.png"
    fig.savefig(path, dpi=110)
    names.append(path.name)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.2), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (strategy, runs) in zip(axes, results.items()):
        rounds = runs[0]["rounds"]
        cmap = plt.get_cmap("viridis", len(rounds))
        for k, pts in enumerate(rounds):
            p = torch.tensor(pts)
            ax.scatter(p[:, 0], p[:, 1], s=10 + 40 * (p[:, 2] - 0.2) / 1.3, color=cmap(k),  # size: speed
                       label=f"round {k}" if strategy == "sobol" else None)
        ax.add_patch(plt.Rectangle((4.5, 2.5), 1.0, 1.0, color="grey", alpha=0.6))
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 6)
        ax.set_title(strategy)
        ax.set_xlabel("source x (m)")
    axes[0].set_ylabel("source y (m)")
    axes[0].legend(fontsize=6, loc="lower left")
    fig.suptitle("Chosen points by round (seed 0; colour: round, size: inlet speed; grey: pillar)")
    fig.tight_layout()
    path = RESULTS / f"{NAME}_points.png"
    fig.savefig(path, dpi=110)
    names.append(path.name)
    plt.close(fig)
    return names


def main() -> None:
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    refs = References()
    g = torch.Generator().manual_seed(TEST_SEED)
    pool = SPACE.from_unit(torch.rand(4 * N_TEST, SPACE.dim, generator=g, dtype=torch.float64))
    x_test = first_feasible(pool, N_TEST)
    test = refs.batch(x_test)
    if "--sketch-check" in sys.argv:
        path = write_result("active_learning_sketch", {
            "description": sketch_check.__doc__.split("\n\n")[0], "directions": FISHER_DIRECTIONS,
            "candidates": CANDIDATES, "seeds": sketch_check(refs), "machine": machine(),
            "load_average_at_end": os.getloadavg(),
            "command": " ".join(["python", "bench/active_learning.py", *sys.argv[1:]])})
        print(f"wrote {path}")
        return
    # "information" (93 s per proposal) runs when named: --strategies sobol,information (README)
    strategies = [s for s in VARIANTS if s != "information" and s not in ORACLES]  # run when named
    assert {VARIANTS[s][0] for s in strategies} <= set(STRATEGIES)
    if QUICK:
        strategies = ["sobol", "error"]
    if ONLY:
        strategies = ONLY.split(",")
    results: dict[str, list[dict]] = {}
    for strategy in strategies:
        results[strategy] = []
        for seed in SEEDS:
            t0 = time.perf_counter()
            results[strategy].append(cached_run(strategy, seed, refs, test, x_test))
            print(f"{strategy} seed {seed}: final mean {results[strategy][-1]['test_mean'][-1]:.4f} "
                  f"worst {results[strategy][-1]['test_worst'][-1]:.4f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    n = results["sobol"][0]["n"]
    mean_curve = {s: [statistics.mean(r["test_mean"][k] for r in runs) for k in range(len(n))]
                  for s, runs in results.items()}
    worst_curve = {s: [statistics.mean(r["test_worst"][k] for r in runs) for k in range(len(n))]
                   for s, runs in results.items()}
    target = mean_curve["sobol"][-1]
    headline = {}
    for s in results:
        need = sims_to_reach(n, mean_curve[s], target)
        headline[s] = {"sims_to_sobol_final_mean": need,
                       "fraction_of_sobol_budget": None if need is None else need / n[-1],
                       "final_mean": mean_curve[s][-1], "final_worst": worst_curve[s][-1],
                       "final_mean_spread": [min(r["test_mean"][-1] for r in results[s]),
                                             max(r["test_mean"][-1] for r in results[s])],
                       "mean_propose_s": statistics.mean(t for r in results[s] for t in r["propose_s"])}
    diagnostics = diagnose(results)
    if LEARNER and "--control" in sys.argv:
        diagnostics["control_no_new_data"] = {str(seed): no_new_data(seed, refs, test) for seed in SEEDS}
    lat = {f"{d}d": latency(d) for d in (4, 6)} if not (PARTIAL or LEARNER) else {}  # learner-independent
    names = figures(results)
    payload = {
        "description": __doc__.split("\n\n")[0],
        "reductions": {"scenario": "configs/scenarios/room.toml (20x12x6 cells, 0.5 m), potential flow, "
                                   "TVD + SSP-RK2, horizon 120 s, outputs every 10 s (instead of the hall)",
                       "surrogate": (f"hybrid, hidden_channels={HIDDEN}, room layers, TVD, learned sink, "
                                     f"multiplicative closure (gain {GAIN}); physics stage {PHYS_EPOCHS} epochs "
                                     f"(physics lr {PHYS_LR}, closure frozen), closure stage {EPOCHS} epochs, "
                                     f"{WARM_EPOCHS} warm-start epochs per round (lr {CLOSURE_LR}, mini-batches "
                                     f"of {MINI_BATCH} cases, full horizon, TBPTT {TBPTT})") if LEARNER else
                                    (f"hybrid, hidden_channels={HIDDEN}, {EPOCHS} epochs initial (lr {LR}) + "
                                     f"{WARM_EPOCHS} warm-start epochs per round (lr {WARM_LR}, no warm-up)"),
                       "budget": f"{INITIAL} initial Sobol + rounds of {BATCH} up to {BUDGET} simulations",
                       "seeds": list(SEEDS)},
        "design": {k: {"path": v[0], "low": v[1], "high": v[2]} for k, v in PARAMS.items()},
        "test_set": {"n": len(x_test), "seed": TEST_SEED, "points": x_test.tolist()},
        "settings": dataclasses.asdict(SETTINGS),
        "n_sims": n, "mean_curve": mean_curve, "worst_curve": worst_curve,
        "sobol_final_mean": target, "headline": headline, "diagnostics": diagnostics, "runs": results,
        "latency_q4_n200": lat, "load_average_at_end": os.getloadavg(),
        "reference_simulations_run": refs.simulated, "reference_seconds": refs.sim_seconds,
        "wall_seconds": time.perf_counter() - t_start, "figures": names, "machine": machine(), "quick": QUICK,
        "learner": LEARNER, "command": " ".join(["python", "bench/active_learning.py", *sys.argv[1:]]),
    }
    path = write_result(NAME, payload)

    table = Table(title=f"Simulations to reach Sobol's final mean test error ({target:.4f} at {n[-1]} sims)")
    for col in ("strategy", "sims needed", "fraction", f"mean @ {n[-1]}", f"worst @ {n[-1]}", "propose s"):
        table.add_column(col)
    for s, h in headline.items():
        table.add_row(s, str(h["sims_to_sobol_final_mean"] or f"> {n[-1]}"),
                      "-" if h["fraction_of_sobol_budget"] is None else f"{h['fraction_of_sobol_budget']:.0%}",
                      f"{h['final_mean']:.4f}", f"{h['final_worst']:.4f}", f"{h['mean_propose_s']:.2f}")
    Console().print(table)
    if not lat:
        print(f"wrote {path} in {time.perf_counter() - t_start:.0f} s")
        return
    lt = Table(title="Latency of one proposal (q = 4, 200 observed points), median seconds")
    lt.add_column("dims")
    for label in lat["4d"]:
        lt.add_column(label)
    for d, row in lat.items():
        lt.add_row(d, *(f"{v['median_s']:.2f}" for v in row.values()))
    Console().print(lt)
    print(f"wrote {path} in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
