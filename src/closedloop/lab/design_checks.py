"""Checks of a campaign's design space at load, before any compute: every feasible corner fits
the simulation limits, and some point of the design gives a scenario that can run."""
from __future__ import annotations

import collections
import itertools
import warnings
from typing import TYPE_CHECKING

from pydantic import ValidationError

from closedloop.planners.design import sobol_design
from closedloop.simulators.budget import ScenarioTooLarge, check_size
from closedloop.simulators.geometry import ClosedOff, check_connected, room_geometry
from closedloop.simulators.scenario import Scenario

if TYPE_CHECKING:
    from closedloop.lab.config import CampaignConfig


def corners_fit(config: CampaignConfig) -> None:
    """Every feasible corner of the design space (all 2^d combinations of the bounds for d ≤ 8,
    else each parameter at a bound) must fit the simulation limits (simulators/budget.py)."""
    sim, params = config.simulation, config.design.parameters
    bounds = [(p.low, p.high) if p.kind != "categorical" else tuple(p.choices or ()) for p in params]
    corners = itertools.product(*bounds) if len(params) <= 8 else \
        ([b[i] if j == k else b[0] for j, b in enumerate(bounds)] for k in range(len(params)) for i in (0, -1))
    for values in corners:
        try:  # a corner may be infeasible (a source inside a pillar): the planner never proposes it
            scenario = config.scenario.with_parameters({p.path: v for p, v in zip(params, values)})
        except ValueError:
            continue
        try:
            check_size(scenario, sim.max_memory_gb, sim.max_cells)
        except ScenarioTooLarge as err:
            at = ", ".join(f"{p.name} = {v:.4g}" for p, v in zip(params, values)) or "the base scenario"
            raise ValueError(f"simulation: at {at}, {err}") from None


def some_point_runs(config: CampaignConfig) -> None:
    """Some of 64 Sobol points of the design space must give a valid scenario (vents open onto
    fluid, the source outside every obstacle, ...) whose inlets reach an exhaust; else no case
    could ever be simulated. Connectivity is checked on the grid at each point when the design
    moves the geometry, else once (at the first valid point)."""
    space = config.design.space()
    geometric = config.design.moves_geometry()
    reasons: collections.Counter[str] = collections.Counter()
    example: dict[str, str] = {}
    for row in space.as_dicts(sobol_design(space, 64, seed=config.seed)):
        try:
            scenario = config.scenario.with_parameters(config.design.scenario_values(row))
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            message = (f"{loc}: " if loc else "") + first["msg"].removeprefix("Value error, ")
        else:
            try:
                connected(scenario)
                return
            except ValueError as err:
                if not geometric:  # every point shares the base scenario's connectivity
                    raise
                message = str(err)
        field = message.split(":")[0]
        reasons[field] += 1
        example.setdefault(field, message)
    field, count = reasons.most_common(1)[0]
    raise ValueError(f"design: none of 64 Sobol points of the design space gives a valid scenario "
                     f"({count} of them fail on {field}, e.g. {example[field]})")


def connected(scenario: Scenario) -> None:
    """ValueError naming an inlet whose air cannot reach an exhaust (simulators.geometry), after the
    size check: the grid is built only for a scenario that fits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClosedOff)
        check_connected(scenario, room_geometry(scenario))
