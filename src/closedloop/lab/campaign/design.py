"""The design step: scenarios of design points, which points are feasible, the Sobol design.

A design point is a dict {parameter name: value} in natural units; :func:`scenario_for` applies it
to the campaign's base scenario (validated, so an infeasible point raises ValueError).
:func:`proposed_points` puts a proposal on the design space's resolution grid before it becomes a
case (and a case id), so the id does not depend on an optimiser's last bits.
"""
from __future__ import annotations

import warnings

import torch

from closedloop.lab.config import CampaignConfig
from closedloop.lab.fidelity_config import FIDELITY_KEY
from closedloop.planners import sobol_design
from closedloop.simulators import Scenario
from closedloop.simulators.geometry import ClosedOff, check_connected, room_geometry
from closedloop.surrogates.coupling import batch_problems


def scenario_for(config: CampaignConfig, params: dict[str, float]) -> Scenario:
    """The base scenario with the design parameters applied (validated); a case's parameters may
    also name its fidelity level (``"fidelity"``), whose cell size and numerics then apply."""
    level = params.get(FIDELITY_KEY)
    if level is None:
        return config.scenario.with_parameters(config.design.scenario_values(params))
    design = {k: v for k, v in params.items() if k != FIDELITY_KEY}
    names = [lv.name for lv in config.fidelity]
    if level not in names:
        raise ValueError(f"fidelity: unknown level {level!r}; the levels are {names}")
    values = {**config.design.scenario_values(design), **config.fidelity[names.index(level)].overrides()}
    return config.scenario.with_parameters(values)


def case_id_for(config: CampaignConfig, params: dict[str, float]) -> str:
    """The id of a design point's case: its scenario and the configured simulator (``Scenario.case_id``)."""
    return scenario_for(config, params).case_id(config.simulation.producer())


def proposed_points(config: CampaignConfig, x: torch.Tensor) -> list[dict[str, float]]:
    """Proposed points (n x d, natural units) as design points on the resolution grid
    (``DesignSpace.quantize``). A feasible point whose grid neighbour is not (it sat within half a
    step of a pillar or a bound of validity) is kept as proposed: feasibility comes first."""
    space = config.design.space()
    grid = space.quantize(x)
    moved = (grid != x).any(dim=-1)
    if moved.any():
        bad = moved.clone()
        bad[moved] = ~feasible_mask(config, grid[moved])
        grid = torch.where(bad[:, None], x, grid)
    return space.as_dicts(grid)


def feasible_mask(config: CampaignConfig, x: torch.Tensor) -> torch.Tensor:
    """Which rows of x (n x d, natural units) give a valid scenario (e.g. source not in a pillar)
    whose inlets reach an exhaust (checked on the grid only when the design moves the geometry)."""
    space = config.design.space()
    geometric = config.design.moves_geometry()
    ok = []
    for row in space.as_dicts(x):
        try:
            scenario = scenario_for(config, row)
            if geometric:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ClosedOff)
                    check_connected(scenario, room_geometry(scenario))
            ok.append(True)
        except ValueError:
            ok.append(False)
    return torch.tensor(ok, dtype=torch.bool)


def feasible_sobol(config: CampaignConfig, n: int, skip: int) -> tuple[torch.Tensor, int]:
    """The next ``n`` feasible points of the campaign's Sobol sequence from position ``skip``,
    and the position just after the last one used (so a continuation never repeats a point)."""
    space = config.design.space()
    out: list[torch.Tensor] = []
    pos = skip
    while True:
        chunk = sobol_design(space, 64, seed=config.seed, skip=pos)
        ok = feasible_mask(config, chunk)
        for j in range(chunk.shape[0]):
            if ok[j]:
                out.append(chunk[j])
                if len(out) == n:
                    return torch.stack(out), pos + j + 1
        pos += 64
        if pos - skip >= 4096:
            raise ValueError(f"design space: fewer than {n} feasible points in 4096 Sobol draws")


def candidate_problems(config: CampaignConfig, points: torch.Tensor):
    """Scenarios of design points (n x d) and their batched plane forcing and problem."""
    scenarios = [scenario_for(config, row) for row in config.design.space().as_dicts(points)]
    forcing, problem = batch_problems(scenarios)
    return scenarios, forcing, problem
