"""The checks of a campaign's design that build scenarios and grids, run once by each entry point
before any compute (:func:`closedloop.lab.config.preflight`): every bound of the design gives a
valid scenario, every feasible corner fits the simulation limits, and some point of the design
gives a scenario that can run. Each takes the sections it reads, and raises a ValueError whose
message starts with the field it names."""
from __future__ import annotations

import collections
import itertools
import warnings

from pydantic import ValidationError

from closedloop.lab.design_config import Design
from closedloop.lab.simulation_config import SimulationConfig
from closedloop.planners.design import sobol_design
from closedloop.simulators.budget import ScenarioTooLarge, check_size
from closedloop.simulators.geometry import ClosedOff, check_connected, room_geometry
from closedloop.simulators.scenario import Scenario


def design_fits_scenario(scenario: Scenario, design: Design) -> None:
    """Each parameter's path exists in the scenario, and each of its bounds (or choices) alone
    gives a valid scenario."""
    for i, p in enumerate(design.parameters):
        for label, value in p.extremes():
            try:
                scenario.with_parameters({p.path: value})
            except KeyError as err:
                raise ValueError(f"design.parameters.{i}.path: {err.args[0]}") from None
            except ValidationError as err:
                first = err.errors()[0]
                raise ValueError(f"design.parameters.{i} ({p.name}): at its {label} {value} "
                                 f"the scenario is invalid: {first['msg']}") from None


def corners_fit(scenario: Scenario, design: Design, simulation: SimulationConfig) -> None:
    """Every feasible corner of the design space (all 2^d combinations of the bounds for d ≤ 8,
    else each parameter at a bound) must fit the simulation limits (simulators/budget.py)."""
    params = design.parameters
    bounds = [tuple(value for _, value in p.extremes()) for p in params]
    corners = itertools.product(*bounds) if len(params) <= 8 else \
        ([b[i] if j == k else b[0] for j, b in enumerate(bounds)] for k in range(len(params)) for i in (0, -1))
    for values in corners:
        try:  # a corner may be infeasible (a source inside a pillar): the planner never proposes it
            point = scenario.with_parameters({p.path: v for p, v in zip(params, values)})
        except ValueError:
            continue
        try:
            check_size(point, simulation.max_memory_gb, simulation.max_cells)
        except ScenarioTooLarge as err:
            at = ", ".join(f"{p.name} = {v:.4g}" for p, v in zip(params, values)) or "the base scenario"
            raise ValueError(f"simulation: at {at}, {err}") from None


def some_point_runs(scenario: Scenario, design: Design, seed: int) -> None:
    """Some of 64 Sobol points of the design space (seeded by the campaign's ``seed``) must give a
    valid scenario (vents open onto fluid, the source outside every obstacle, ...) whose inlets
    reach an exhaust; else no case could ever be simulated. Connectivity is checked on the grid at
    each point when the design moves the geometry, else once (at the first valid point)."""
    space = design.space()
    geometric = design.moves_geometry()
    reasons: collections.Counter[str] = collections.Counter()
    example: dict[str, str] = {}
    for row in space.as_dicts(sobol_design(space, 64, seed=seed)):
        try:
            point = scenario.with_parameters(design.scenario_values(row))
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            message = (f"{loc}: " if loc else "") + first["msg"].removeprefix("Value error, ")
        else:
            try:
                connected(point)
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
