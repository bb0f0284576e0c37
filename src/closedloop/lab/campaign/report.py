"""The report step: what a round shows (cases table, planner summary, error map, worst case).

:func:`round_report` assembles it without writing anything; :func:`write_round_report` writes its
figures and then ``figures/round_NNN.md`` last, so a round whose report is missing (the run
stopped after training) is published again when the campaign resumes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from closedloop.lab import figures
from closedloop.lab.atomic import atomic_write_bytes, atomic_write_text
from closedloop.lab.campaign.design import feasible_mask
from closedloop.lab.campaign.fidelity import fidelity_lines
from closedloop.lab.campaign.learn import training_history, validate_round
from closedloop.lab.campaign.propose import observed_errors
from closedloop.lab.campaign.state import report_path
from closedloop.lab.campaign.stop import stop_reason
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.lab.tables import significant
from closedloop.lab.timing import timed
from closedloop.planners import fit_error_model


@dataclass
class ErrorSlice:
    """The error GP's predicted relative L2, exp(μ(x)), on a 2D slice of the design space: the first
    two parameters on a grid, the others at their mid-range (NaN where the scenario is infeasible)."""

    names: tuple[str, str]
    xs: torch.Tensor
    ys: torch.Tensor
    error: torch.Tensor  # (len(ys), len(xs))
    fixed: dict[str, float]


def predicted_error_slice(config: CampaignConfig, ledger: pd.DataFrame, n: int = 40) -> ErrorSlice | None:
    """None when the design has one parameter or fewer than 2 cases are validated."""
    x_obs, y_obs = observed_errors(ledger, config)
    space = config.design.space()
    if space.dim < 2 or len(y_obs) < 2:
        return None
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        gp = fit_error_model(space, x_obs, y_obs)
    lo, hi = space.bounds()
    xs, ys = torch.linspace(lo[0], hi[0], n, dtype=torch.float64), torch.linspace(lo[1], hi[1], n, dtype=torch.float64)
    grid = space.snap(((lo + hi) / 2).repeat(n * n, 1))
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid[:, 0], grid[:, 1] = gx.reshape(-1), gy.reshape(-1)
    grid = space.snap(grid)
    with torch.no_grad():
        err = gp.posterior(grid).mean.squeeze(-1).exp()
    err[~feasible_mask(config, grid)] = float("nan")
    fixed = {name: float(v) for name, v in zip(space.names[2:], grid[0, 2:])}
    return ErrorSlice((space.names[0], space.names[1]), xs, ys, err.reshape(n, n), fixed)


def planner_report(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> list[str]:
    """Markdown lines for a round's report: strategy, proposals and the stopping decision."""
    mine = ledger[ledger["round"] == round_index]
    strategies = ", ".join(sorted(set(mine["strategy"].dropna()))) or "none"
    pl, b = config.planner, config.budget
    lines = [f"Strategy: **{strategies}** (configured `{pl.strategy}`, acquisition `{pl.acquisition}`, "
             f"batch {b.batch_size}; {len(ledger)} of {b.max_cases or 'unlimited'} simulations used)", "",
             "| case | status | " + " | ".join(config.design.space().names) + " |",
             "|---|---|" + "---|" * config.design.space().dim]
    for _, row in mine.iterrows():
        params = json.loads(row["parameters"])
        lines.append(f"| `{row['case_id']}` | {row['status']} | " +
                     " | ".join(f"{params[k]:.4g}" for k in config.design.space().names) + " |")
    reason = stop_reason(config, ledger, round_index)
    lines += ["", f"Stopping rule: {'**stop** — ' + reason if reason else 'continue (no stopping condition met)'}"]
    return lines + (fidelity_lines(config, ledger, round_index) if config.fidelity else [])



def training_lines(store: CampaignStore, round_index: int) -> list[str]:
    """Markdown lines: how the round's training went (start, best and last loss, best epoch, largest
    spike) and a warning when it did not learn; nothing for a round not trained yet."""
    rows = [row for row in training_history(store, round_index + 1) if row["round"] == round_index]
    if not rows:
        return []
    t = rows[0]
    best = "none (starting weights kept)" if t["kept_start"] else f"{t['best_epoch']} of {t['epochs']}"
    lines = [f"Training on {t['cases']} cases: loss {t['initial_loss']:.4g} → best {t['best_loss']:.4g} "
             f"(best epoch {best}; last epoch {t['last_loss']:.4g}; largest spike {t['largest_spike']:.2f}× the "
             f"best so far), {t['seconds']:.1f} s", ""]
    return lines + [f"**Warning: training did not learn:** {w}" for w in t["warnings"]] + ([""] if t["warnings"] else [])


@dataclass
class RoundReport:
    """A round's report: the cases table, the markdown (figures inlined for an artifact, and linked
    for the file on disk) and the figures as PNG bytes by file name."""

    table: list[dict]
    markdown: str
    on_disk: str
    figures: dict[str, bytes] = field(default_factory=dict)


def case_table(ledger: pd.DataFrame, round_index: int) -> list[dict]:
    """One row per case of the round: id, status, validation error and simulation time first (so
    they stay in view), then strategy and parameters; numbers to 4 significant digits."""
    table = []
    for _, row in ledger[ledger["round"] == round_index].iterrows():
        entry = {"case_id": row["case_id"], "status": row["status"], "rel_l2": float(row["rel_l2"]),
                 "sim_seconds": float(row["sim_seconds"]), "strategy": row["strategy"],
                 **json.loads(row["parameters"])}
        table.append({k: significant(v) for k, v in entry.items()})
    return table


def round_report(config: CampaignConfig, store: CampaignStore, round_index: int) -> RoundReport:
    """Learning curve, planner summary, the error GP's map and the worst case's planes."""
    ledger = store.read_ledger()
    mine = ledger[ledger["round"] == round_index]
    with timed("reporting"):
        pngs = {"learning_curve.png": figures.learning_curve(ledger)}
    head = [f"# {config.name}: round {round_index}", "",
            f"Mean validation relative L2 (predicted before training): "
            f"{mine['rel_l2'].mean():.4f}; worst {mine['rel_l2'].max():.4f}", ""]
    head += training_lines(store, round_index) + planner_report(config, ledger, round_index) + [""]
    sections = [("learning curve", "", "learning_curve.png")]
    cut = predicted_error_slice(config, ledger[ledger["round"] <= round_index])
    if cut is not None:
        pts = np.array([[p[n] for n in cut.names] for p in ledger.cases.params()])
        fixed = ", ".join(f"{k} = {v:.3g}" for k, v in cut.fixed.items())
        name = f"round_{round_index:03d}_error_map.png"
        with timed("reporting"):
            pngs[name] = figures.error_map(cut.xs, cut.ys, cut.error, cut.names, pts,
                                           title=f"predicted error ({fixed})" if fixed else "")
        sections.append(("error map", "Error GP, predicted validation error on a 2D slice:", name))
    validated = mine.cases.validated()
    if len(validated):
        worst = validated.loc[validated["rel_l2"].idxmax(), "case_id"]
        _, preds = validate_round(config, store, round_index, [worst])
        case = store.read_case(worst)
        name = f"round_{round_index:03d}_worst.png"
        with timed("reporting"):
            pngs[name] = figures.plane_comparison(preds[worst][-1], case.plane[-1].to(torch.float64),
                                                  case.plane_mask, float(case.times[-1]), title=f"worst case {worst}")
        sections.append(("plane", f"Worst case `{worst}`, final time:", name))
    inline, linked = list(head), list(head)
    for alt, caption, name in sections:
        lead = ["", caption, ""] if caption else []
        inline += lead + [f"![{alt}]({figures.data_url(pngs[name])})"]
        linked += lead + [f"![{alt}]({name})"]
    return RoundReport(case_table(ledger, round_index), "\n".join(inline), "\n".join(linked), pngs)


def write_round_report(store: CampaignStore, round_index: int, report: RoundReport) -> None:
    """The figures, then ``figures/round_NNN.md`` (atomic writes; the report last)."""
    for name, png in report.figures.items():
        atomic_write_bytes(store.figures_dir / name, png, label="figure")
    atomic_write_text(report_path(store, round_index), report.on_disk + "\n", label="report")
