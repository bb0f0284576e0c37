"""Fidelity levels in the campaign's steps: a case's level, the surrogate's view of a case, the
levels of a round's proposals, and the compute spent.

A case's parameters hold its level under ``"fidelity"`` (lab/fidelity_config.py); its scenario is
the campaign's with the level's cell size and numerics (:func:`closedloop.lab.campaign.design.scenario_for`).
The surrogate sees every case on its own plane grid (the campaign scenario's cell size h_s): the
forcing from the case's scenario at h_s, the reference plane restricted conservatively from h_l
(simulators/fidelity.py), and the level s ∈ [0, 1] as ``Forcing.fidelity`` (top = 1).
"""
from __future__ import annotations


import pandas as pd
import torch

from closedloop.lab.config import CampaignConfig
from closedloop.lab.fidelity_config import FIDELITY_KEY, FidelityLevel, fidelity_value
from closedloop.lab.store import Case
from closedloop.simulators import Scenario
from closedloop.simulators.fidelity import band_weights, refinement_factor, restrict_plane
from closedloop.surrogates.coupling import batch_problems
from closedloop.surrogates.forcing import Forcing


def level_named(config: CampaignConfig, name: str) -> FidelityLevel:
    for level in config.fidelity:
        if level.name == name:
            return level
    raise ValueError(f"fidelity: unknown level {name!r}; the levels are {[lv.name for lv in config.fidelity]}")


def top_level(config: CampaignConfig) -> str:
    return config.fidelity[-1].name


def with_level(params: dict, level: str) -> dict:
    """A design point's parameters with its level (the case's parameters)."""
    return {**{k: v for k, v in params.items() if k != FIDELITY_KEY}, FIDELITY_KEY: level}


def level_of(config: CampaignConfig, scenario: Scenario) -> str:
    """The level whose cell size and numerics the scenario has; ValueError when none matches."""
    for level in sorted(config.fidelity, key=lambda lv: -len(lv.overrides())):  # the most specific first
        if all(scenario.get_parameter(path) == value if not isinstance(value, str)
               else get_text(scenario, path) == value for path, value in level.overrides().items()):
            return level.name
    raise ValueError(f"scenario {scenario.name!r}: cell size {scenario.room.cell_size} and numerics match no "
                     f"fidelity level of the campaign")


def get_text(scenario: Scenario, path: str) -> str:
    section, field = path.split(".")
    return str(getattr(getattr(scenario, section), field))


def surrogate_scenario(config: CampaignConfig, scenario: Scenario) -> Scenario:
    """The case's scenario on the surrogate's grid: the campaign scenario's cell size and numerics."""
    base = config.scenario
    return scenario.with_parameters({"room.cell_size": base.room.cell_size,
                                     **{f"numerics.{k}": v for k, v in base.numerics.model_dump().items()}})


def surrogate_view(config: CampaignConfig, cases: list[Case]) -> tuple[list[Scenario], Forcing, torch.Tensor]:
    """The cases as the surrogate sees them: scenarios at h_s, their forcing with ``fidelity`` set
    ((B,) level values), and the reference planes restricted onto h_s, (B, T, nx_s, ny_s) float64."""
    h_s = float(config.scenario.room.cell_size)  # type: ignore[arg-type]
    scenarios, planes, levels = [], [], []
    for case in cases:
        level = level_named(config, level_of(config, case.scenario))
        factor = refinement_factor(h_s, level.cell_size)
        weights = band_weights(case.scenario) if factor > 1 else None
        planes.append(case.plane.to(torch.float64) if weights is None
                      else restrict_plane(case.plane.to(torch.float64), weights, factor))
        scenarios.append(surrogate_scenario(config, case.scenario))
        levels.append(fidelity_value(config.fidelity, level.name))
    forcing, _ = batch_problems(scenarios)
    forcing.fidelity = torch.tensor(levels, dtype=forcing.source.dtype)
    return scenarios, forcing, torch.stack(planes)


def case_levels(config: CampaignConfig, rows: pd.DataFrame) -> list[str]:
    """The level of each ledger row (from its parameters)."""
    top = top_level(config)
    return [p.get(FIDELITY_KEY, top) for p in rows.cases.params()]


def level_counts(config: CampaignConfig, n: int, table: dict[str, int]) -> list[str]:
    """``n`` levels in the proportions of ``table`` (cases per level), cheapest first; without a
    table, every case at the top level."""
    if not table or sum(table.values()) == 0:
        return [top_level(config)] * n
    order = [lv.name for lv in config.fidelity if table.get(lv.name, 0) > 0]
    total = sum(table[name] for name in order)
    counts = {name: n * table[name] // total for name in order}
    for name in sorted(order, key=lambda m: -(n * table[m] % total))[: n - sum(counts.values())]:
        counts[name] += 1
    return [name for name in order for _ in range(counts[name])]


def proposal_levels(config: CampaignConfig, points: list[dict[str, float]], values: torch.Tensor | None,
                    table: dict[str, int]) -> list[dict]:
    """The proposal's case parameters: each point with its level, the nearest to ``values`` (n,)
    when the strategy chose them, else in the proportions of ``table`` (:func:`level_counts`)."""
    names = [lv.name for lv in config.fidelity]
    if values is not None:
        grid = torch.tensor([fidelity_value(config.fidelity, n) for n in names], dtype=torch.float64)
        chosen = [names[int((grid - float(v)).abs().argmin())] for v in values]
    else:
        chosen = level_counts(config, len(points), table)
    return [with_level(p, level) for p, level in zip(points, chosen)]


def spend_by_level(config: CampaignConfig, ledger: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Cases and CPU-seconds per level (done cases): what each round's artifact reports."""
    done = ledger.cases.done()
    out = {lv.name: {"cases": 0, "cpu_seconds": 0.0} for lv in config.fidelity}
    for level, cpu in zip(case_levels(config, done), done["cpu_seconds"].fillna(0.0)):
        out[level]["cases"] += 1
        out[level]["cpu_seconds"] += float(cpu)
    return out


def fidelity_lines(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> list[str]:
    """Markdown for a round's report: this round's cases by level, the spend by level so far, and the
    validation error against CPU-seconds round by round (mean relative L2, at each case's level)."""
    mine = ledger[ledger["round"] == round_index]
    levels = case_levels(config, mine)
    lines = ["", "This round by level: " + ", ".join(f"{lv.name} {levels.count(lv.name)}" for lv in config.fidelity),
             "", "| level | cases | CPU-seconds |", "|---|---|---|"]
    lines += [f"| {name} | {v['cases']} | {v['cpu_seconds']:.1f} |"
              for name, v in spend_by_level(config, ledger[ledger["round"] <= round_index]).items()]
    budget = config.budget.max_cpu_seconds
    lines += ["", f"Error against compute (budget {budget if budget is not None else 'unlimited'} CPU-seconds):", "",
              "| round | CPU-seconds so far | mean validation rel. L2 |", "|---|---|---|"]
    for r in range(round_index + 1):
        so_far = ledger[ledger["round"] <= r].cases.spend()
        err = ledger.cases.of_round(r).cases.validated()["rel_l2"]
        lines.append(f"| {r} | {so_far:.1f} | {err.mean():.4g} |" if len(err) else f"| {r} | {so_far:.1f} | — |")
    return lines
