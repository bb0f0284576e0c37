"""Fidelity levels of a multi-fidelity campaign: ``[[fidelity]]`` tables and ``[fidelity_plan]``.

A level is a refinement of the campaign's scenario: another cell size h_l (and optionally other
numerics), so its scenario, and hence its case id, differs from the others'. The campaign's own
scenario sets the surrogate's plane grid h_s; every level's plane series is restricted onto it
(:func:`closedloop.simulators.fidelity.restrict_plane`), so h_s must be a whole multiple of h_l.
Levels are listed cheapest first; the last is the top level, the truth the campaign aims at, and
must be the most expensive by the prior cost (fluid cells × time steps, simulators/fidelity.py).
``simulator`` is reserved for a level run by another code (e.g. OpenFOAM as the top level); only
the built-in reference is accepted today.

Each level's position on the planner's fidelity axis is s_l = l / (L − 1) ∈ [0, 1] (top = 1).
A case's parameters carry its level under the reserved key ``"fidelity"`` (``FIDELITY_KEY``).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat

from closedloop.schema import Strict
from closedloop.simulators.fidelity import refinement_factor
from closedloop.simulators.scenario import Scenario

FIDELITY_KEY = "fidelity"


class LevelNumerics(Strict):
    """Numerics a level changes (unset fields keep the scenario's)."""

    advection: Literal["tvd", "upwind"] | None = None
    time_stepping: Literal["ssp_rk2", "euler"] | None = None
    stages: int | None = Field(default=None, ge=1, le=32)
    safety: float | None = Field(default=None, gt=0, le=1)


class FidelityLevel(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    cell_size: PositiveFloat = Field(description="Cell edge of this level (m); h_s / h_l must be whole")
    numerics: LevelNumerics = LevelNumerics()
    simulator: Literal["builtin"] | None = Field(default=None, description="Reserved: who simulates this level")

    def overrides(self) -> dict[str, Any]:
        """Dotted-path scenario overrides that make the campaign's scenario this level's."""
        out: dict[str, Any] = {"room.cell_size": self.cell_size}
        out.update({f"numerics.{k}": v for k, v in self.numerics.model_dump(exclude_none=True).items()})
        return out


class FidelityPlan(Strict):
    """How a multi-fidelity campaign spends: round 0's Sobol cases per level, and the fixed mix
    (cases per level per round) of the ``sobol`` and ``random`` strategies; the ``multifidelity``
    strategy chooses levels itself, in greedy order, so a compute budget per round keeps its first
    cases. Level names must be those of ``[[fidelity]]``."""

    initial: dict[str, int] = Field(default_factory=dict, description="Round 0 Sobol cases per level")
    mix: dict[str, int] = Field(default_factory=dict, description="Cases per level per round (sobol, random)")
    round_cpu_seconds: float | None = Field(default=None, gt=0, description="A later round's proposals stop "
                                            "once their expected CPU-seconds reach this (at most batch_size cases)")
    top_share: float | None = Field(default=None, gt=0, lt=1, description="Least share of the CPU-seconds "
                                    "(spent, and expected of the cases in flight) kept for the top level: a proposal "
                                    "below it goes to the top level, whatever the strategy chose (cost-aware planners "
                                    "otherwise settle on the cheap level)")


def level_scenario(scenario: Scenario, level: FidelityLevel) -> Scenario:
    return scenario.with_parameters(level.overrides())


def check_fidelities(levels: list[FidelityLevel], plan: FidelityPlan, scenario: Scenario,
                     parameter_names: list[str]) -> None:
    """Refuse a fidelity setup that cannot be valid, naming the field (ValueError)."""
    from closedloop.simulators.fidelity import prior_cost
    if not levels:
        for field, table in (("initial", plan.initial), ("mix", plan.mix)):
            if table:
                raise ValueError(f"fidelity_plan.{field}: given, but no [[fidelity]] levels are configured")
        return
    if len(levels) < 2:
        raise ValueError("fidelity: a multi-fidelity campaign needs at least 2 levels")
    names = [lv.name for lv in levels]
    if len(set(names)) != len(names):
        raise ValueError(f"fidelity: level names must be unique, got {names}")
    if FIDELITY_KEY in parameter_names:
        raise ValueError(f"design.parameters: {FIDELITY_KEY!r} is reserved for the case's level")
    h_s = scenario.room.cell_size
    if not isinstance(h_s, float | int):
        raise ValueError("scenario.room.cell_size: a multi-fidelity campaign needs cubic cells (one edge)")
    costs = []
    for i, lv in enumerate(levels):
        try:
            refinement_factor(float(h_s), lv.cell_size)
        except ValueError as err:
            raise ValueError(f"fidelity.{i}.cell_size: {err}") from None
        try:
            costs.append(prior_cost(level_scenario(scenario, lv)))
        except ValueError as err:
            raise ValueError(f"fidelity.{i} ({lv.name}): the level's scenario is invalid: {err}") from None
    if costs[-1] <= max(costs[:-1]):
        cheap = {lv.name: f"{c:.3g}" for lv, c in zip(levels, costs)}
        raise ValueError(f"fidelity: the top level (the last, {levels[-1].name!r}) must be the most expensive; "
                         f"prior costs (fluid cells × steps) {cheap}")
    for field, table in (("initial", plan.initial), ("mix", plan.mix)):
        for name, count in table.items():
            if name not in names:
                raise ValueError(f"fidelity_plan.{field}.{name}: unknown level; the levels are {names}")
            if count < 0:
                raise ValueError(f"fidelity_plan.{field}.{name}: must be ≥ 0, got {count}")
    if plan.initial and sum(plan.initial.values()) < 2:
        raise ValueError("fidelity_plan.initial: round 0 needs at least 2 cases (the GP needs two)")


def fidelity_value(levels: list[FidelityLevel], name: str) -> float:
    """s_l = l / (L − 1): the level's position on the planner's fidelity axis (top = 1)."""
    names = [lv.name for lv in levels]
    if name not in names:
        raise ValueError(f"fidelity: unknown level {name!r}; the levels are {names}")
    return names.index(name) / (len(levels) - 1)
