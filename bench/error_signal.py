"""Does the planner's error model point at the hard cases? (issue 23's diagnosis)

Error-seeking strategies (``error``, ``error_ivr``, ``tail``) propose where the error GP predicts a large
log error. They can beat Sobol only if that GP ranks the cases' true errors. This reads finished
campaigns of bench/active_learning_tail.py (their ledgers and round checkpoints, under ``--work``) and,
after each round r ≥ 1, compares on the held-out test set:

- the truth: log rel. L2 of every test case under round r's model (what the next cases should fix);
- the GP the planner fitted then: ``planners.gp.fit_error_model`` on the ledger's validated cases up to
  round r (``lab.campaign.propose.observed_errors``), its posterior mean at the test points;

as a Spearman rank correlation ρ (1: the GP knows which cases are hard; 0: it does not). Two targets
for the GP: ``raw``, the log errors as the ledger holds them (each measured by the model of its own
round, so early cases carry the large errors of early models), and ``centred``, each log error minus
the mean of the cases its model validated (``validated_by``): the relative difficulty, with the
campaign's fall of the error over rounds removed.

Result (bench/results/error_signal.json): ``spaces``: {space: {label: {seed: {``round``, ``rho_raw``,
``rho_centred``, ``rho_current`` (the GP fitted to the errors of round r's model on every case
simulated so far, re-scored after training on them: fresh but in-sample), ``rho_pool_exact`` (the
ceiling of a GP error model at this budget: the GP fitted to the exact log errors of round r's own
model on the 48 pool cases of the ``oracle_pool`` bound, twice the cases a campaign has, none of them
stale), ``rho_disagreement`` (a signal that needs no reference: how much the test case's prediction
changed between the models of rounds r − 1 and r, the ``ensemble`` strategy's kind of score),
``rho_previous_truth`` (the truth of round r − 1's model against round r's: how well
knowing the old model's errors exactly would rank the new model's)}}}}; ``summary``: mean ρ per space
and target over rounds and runs.

    .venv/bin/python bench/error_signal.py [--labels sobol] [--seeds 0,1,2]

(after bench/active_learning_tail.py, whose campaigns and pool it reads).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from closedloop.lab import campaign as steps
from closedloop.lab.campaign.propose import observed_errors
from closedloop.lab.store import CampaignStore
from closedloop.planners.gp import fit_error_model
from closedloop.surrogates.metrics import relative_l2

import active_learning as al
import active_learning_tail as tail
from active_learning_parts.heldout import HeldOut, of_cases
from common import RESULTS, machine, write_result


def centred(ledger, y: torch.Tensor) -> torch.Tensor:
    """Each log error minus the mean log error of the cases the same model validated."""
    groups = ledger.cases.validated()["validated_by"].to_numpy()
    out = y.clone()
    for g in set(groups):
        pick = torch.as_tensor(groups == g)
        out[pick] = y[pick] - y[pick].mean()
    return out


def simulated(config, store: CampaignStore, ledger) -> HeldOut:
    """The ledger's validated cases as a test set, to be scored by a later model than the one that
    validated them."""
    rows = ledger.cases.validated()
    return of_cases(config, store, config.design.space().as_tensor(rows.cases.params()),
                    rows["case_id"].tolist(), -1)


def rank(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(spearmanr(a.numpy(), b.numpy()).statistic)


def run_signal(study: al.Study, label: str, seed: int) -> list[dict]:
    """ρ after each round r ≥ 1 of one finished campaign."""
    config = study.config(label, seed)
    store = CampaignStore.existing(study.work / "runs" / study.base.name / f"{label}_{seed}_{study.key(label, seed)}")
    ledger = store.read_ledger()
    space = config.design.space()
    pool = study.candidates("oracle_pool")
    models = [steps.model_for_round(config, store, r, []) for r in range(int(ledger["round"].max()) + 1)]
    truth, predictions, pool_truth = [], [], []
    for model in models:
        predictions.append(study.test.predict(model))
        truth.append(torch.log(study.test.errors(model, predictions[-1]).to(torch.float64)))
        pool_truth.append(torch.log(pool.errors(model).to(torch.float64)))
    rows = []
    for r in range(1, len(truth) - 1):
        seen = ledger[ledger["round"] <= r]
        x, y = observed_errors(seen, config)
        disagreement = relative_l2(predictions[r - 1], predictions[r]).to(torch.float64)
        row = {"round": r, "cases": len(y), "rho_previous_truth": rank(truth[r - 1], truth[r]),
               "rho_disagreement": rank(disagreement, truth[r])}
        rerun = simulated(config, store, seen)
        current = torch.log(rerun.errors(models[r]).to(torch.float64))
        for name, x, target in (("raw", x, y), ("centred", x, centred(seen, y)), ("current", x, current),
                                ("pool_exact", pool.points, pool_truth[r])):
            gp = fit_error_model(space, x, target)
            with torch.no_grad():
                mean = gp.posterior(study.test.points.to(torch.float64)).mean.squeeze(-1)
            row[f"rho_{name}"] = rank(mean, truth[r])
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=lambda s: s.split(","), default=["sobol"])
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--spaces", type=lambda s: [Path(p) for p in s.split(",")], default=list(tail.SPACES))
    ap.add_argument("--budget", type=int, help="the campaigns' simulations (default: the config's, 32)")
    ap.add_argument("--test-cases", type=int, default=24)
    ap.add_argument("--work", type=Path, default=tail.HERE / "data" / "active_learning")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    spaces: dict = {}
    for config in args.spaces:
        study = al.make_study(tail.driver_args(argparse.Namespace(
            strategies=args.labels, seeds=args.seeds, test_cases=args.test_cases, work=args.work,
            budget=args.budget), config))
        spaces[study.base.name] = {label: {str(seed): run_signal(study, label, seed) for seed in args.seeds}
                                   for label in args.labels}

    def mean(values: list[float]) -> float | None:
        return statistics.mean(values) if values else None

    summary = {space: {key: mean([row[key] for runs in by_label.values() for rows in runs.values() for row in rows])
                       for key in ("rho_raw", "rho_centred", "rho_current", "rho_pool_exact", "rho_disagreement",
                                   "rho_previous_truth")}
               for space, by_label in spaces.items()}
    for space, s in summary.items():
        print(f"{space}: " + ", ".join(f"{k} {v:+.2f}" for k, v in s.items() if v is not None))
    write_result("error_signal", {"description": __doc__.split("\n\n")[0], "spaces": spaces, "summary": summary,
                                  "labels": args.labels, "seeds": args.seeds, "machine": machine(),
                                  "wall_seconds": time.perf_counter() - t0,
                                  "command": "python bench/error_signal.py"}, args.results)


if __name__ == "__main__":
    main()
