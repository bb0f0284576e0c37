"""What a finished study shows (benchmark-only): the headline, diagnostics, figures and tables.

The result's keys are the ones docs/build.py reads (``headline``, ``diagnostics``, ``mean_curve``,
``p95_curve``, ``worst_curve``, ``runs``, ``n_sims``, ``sobol_final_mean``, ``figures``, ``reductions``, ...).
"""
from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402


def sims_to_reach(n: list[int], curve: list[float], target: float) -> int | None:
    for ni, v in zip(n, curve):
        if v <= target * (1 + 1e-9):
            return ni
    return None


def seed_mean(results: dict[str, list[dict]], key: str) -> dict[str, list[float]]:
    """Each strategy's seed-mean curve of ``key`` (``test_mean``, ``test_p95``, ``test_worst``)."""
    n = results["sobol"][0]["n"]
    return {s: [statistics.mean(r[key][k] for r in runs) for k in range(len(n))] for s, runs in results.items()}


def curves(results: dict[str, list[dict]]) -> tuple[list[int], dict, dict]:
    """The simulation counts and each strategy's seed-mean curves of mean and worst test error."""
    return results["sobol"][0]["n"], seed_mean(results, "test_mean"), seed_mean(results, "test_worst")


def worst_seed(runs: list[dict], sobol: list[dict], key: str) -> float | None:
    """The largest fraction of Sobol's budget any seed needs for its ``key`` curve to reach the same
    seed's Sobol final (paired: same seed, same start); None when a seed never reaches it."""
    needs = [sims_to_reach(r["n"], r[key], o[key][-1]) for r, o in zip(runs, sobol)]
    return None if None in needs else max(needs) / sobol[0]["n"][-1]


def headline(results: dict[str, list[dict]]) -> dict:
    """Per strategy: the simulations its seed-mean curve needs to reach Sobol's final seed-mean test
    error (count, and fraction of Sobol's budget), the fractions for Sobol's final mean
    (``sims_to_sobol_mean``) and p95 (``sims_to_sobol_p95``) and their worst seed; None: never reached."""
    n = results["sobol"][0]["n"]
    mean, worst, p95 = (seed_mean(results, k) for k in ("test_mean", "test_worst", "test_p95"))

    def fraction(need: int | None) -> float | None:
        return None if need is None else need / n[-1]

    out = {}
    for s, runs in results.items():
        need = sims_to_reach(n, mean[s], mean["sobol"][-1])
        out[s] = {"sims_to_sobol_final_mean": need, "fraction_of_sobol_budget": fraction(need),
                  "sims_to_sobol_mean": fraction(need),
                  "sims_to_sobol_p95": fraction(sims_to_reach(n, p95[s], p95["sobol"][-1])),
                  "sims_to_sobol_mean_worst_seed": worst_seed(runs, results["sobol"], "test_mean"),
                  "sims_to_sobol_p95_worst_seed": worst_seed(runs, results["sobol"], "test_p95"),
                  "final_mean": mean[s][-1], "final_p95": p95[s][-1], "final_worst": worst[s][-1],
                  "final_mean_spread": [min(r["test_mean"][-1] for r in runs), max(r["test_mean"][-1] for r in runs)],
                  "mean_propose_s": statistics.mean(t for r in runs for t in r["propose_s"]) if any(
                      r["propose_s"] for r in runs) else 0.0}
    return out


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


def curve_figure(results: dict, seeds: int, path: Path, space: str = "room") -> None:
    keys = (("test_mean", "mean"), ("test_p95", "p95"), ("test_worst", "worst"))
    fig, axes = plt.subplots(1, len(keys), figsize=(15, 4))
    for strategy, runs in results.items():
        n = runs[0]["n"]
        for ax, (key, _) in zip(axes, keys):
            vals = torch.tensor([r[key] for r in runs])
            ax.plot(n, vals.mean(0), marker="o", ms=3, label=strategy)
            ax.fill_between(n, vals.min(0).values, vals.max(0).values, alpha=0.15)
    for ax, (_, title) in zip(axes, keys):
        ax.set_xlabel("reference simulations")
        ax.set_ylabel(f"{title} test relative L2")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Active learning on the {space} space (seed mean; band: min-max over {seeds} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def points_figure(results: dict, path: Path) -> None:
    """Seed 0's chosen points by round over (source x, source y), size by inlet speed, the pillar grey."""
    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.2), sharey=True, squeeze=False)
    axes = axes[0]
    for k_ax, (ax, (strategy, runs)) in enumerate(zip(axes, results.items())):
        rounds = runs[0]["rounds"]
        cmap = plt.get_cmap("viridis", len(rounds))
        for k, pts in enumerate(rounds):
            p = torch.tensor(pts)
            ax.scatter(p[:, 0], p[:, 1], s=10 + 40 * (p[:, 2] - 0.2) / 1.3, color=cmap(k),  # size: speed
                       label=f"round {k}" if k_ax == 0 else None)
        ax.add_patch(plt.Rectangle((4.5, 2.5), 1.0, 1.0, color="grey", alpha=0.6))
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 6)
        ax.set_title(strategy)
        ax.set_xlabel("source x (m)")
    axes[0].set_ylabel("source y (m)")
    axes[0].legend(fontsize=6, loc="lower left")
    fig.suptitle("Chosen points by round (seed 0; colour: round, size: inlet speed; grey: pillar)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figures(results: dict, seeds: int, results_dir: Path, name: str, space: str = "room") -> list[str]:
    results_dir.mkdir(parents=True, exist_ok=True)
    curve_figure(results, seeds, results_dir / f"{name}_curves.png", space)
    points_figure(results, results_dir / f"{name}_points.png")
    return [f"{name}_curves.png", f"{name}_points.png"]


def share(fraction: float | None) -> str:
    """A fraction of Sobol's budget as a percentage; "-" when never reached."""
    return "-" if fraction is None else f"{fraction:.0%}"


def print_tables(payload: dict) -> None:
    n, target = payload["n_sims"], payload["sobol_final_mean"]
    table = Table(title=f"Simulations to reach Sobol's final mean test error ({target:.4f} at {n[-1]} sims)")
    for col in ("strategy", "sims needed", "fraction", "p95: fraction", f"mean @ {n[-1]}", f"p95 @ {n[-1]}",
                f"worst @ {n[-1]}", "propose s"):
        table.add_column(col)
    for s, h in payload["headline"].items():
        table.add_row(s, str(h["sims_to_sobol_final_mean"] or f"> {n[-1]}"), share(h["sims_to_sobol_mean"]),
                      share(h["sims_to_sobol_p95"]), f"{h['final_mean']:.4f}", f"{h['final_p95']:.4f}",
                      f"{h['final_worst']:.4f}", f"{h['mean_propose_s']:.2f}")
    Console().print(table)
    lat = payload["latency_q4_n200"]
    if lat:
        lt = Table(title="Latency of one proposal (q = 4, 200 observed points), median seconds")
        lt.add_column("dims")
        for label in lat["4d"]:
            lt.add_column(label)
        for d, row in lat.items():
            lt.add_row(d, *(f"{v['median_s']:.2f}" for v in row.values()))
        Console().print(lt)
