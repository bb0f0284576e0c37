"""Campaign configuration: a campaign file's sections, loaded from TOML and checked before any
compute.

Each TOML table is a model in its own module (``[design]`` lab/design_config.py, ``[budget]``
lab/budget_config.py, ``[planner]`` lab/planner_config.py, ``[surrogate]`` lab/surrogate_config.py,
``[simulation]`` lab/simulation_config.py, ``[campaign]`` lab/modes.py, ``[[fidelity]]`` and
``[fidelity_plan]`` lab/fidelity_config.py); parsing validates each section. The checks that build
scenarios and grids (the design's bounds, corners and feasible points, the fidelity levels) are
:func:`preflight`, run once by each entry point on the config it will run (:func:`load_campaign_config`,
:func:`load_with_overrides`), not again on every copy.

Every error names its field (pydantic's location, e.g. ``budget.rounds``) and the reason.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from closedloop.lab.budget_config import Budget
from closedloop.lab.design_checks import corners_fit, design_fits_scenario, some_point_runs
from closedloop.lab.design_config import Design, DesignParameter
from closedloop.lab.fidelity_config import FidelityLevel, FidelityPlan, check_fidelities
from closedloop.lab.modes import ModeConfig
from closedloop.lab.planner_config import PlannerConfig
from closedloop.lab.simulation_config import SimulationConfig
from closedloop.lab.surrogate_config import SurrogateConfig
from closedloop.planners.design import round_seed
from closedloop.planners.strategies import REGISTRY
from closedloop.schema import Strict, UnreadableFile, read_toml
from closedloop.simulators.scenario import Scenario, set_path

__all__ = ["Budget", "CampaignConfig", "ConfigError", "Design", "DesignParameter", "FidelityLevel", "FidelityPlan",
           "ModeConfig", "PlannerConfig", "SimulationConfig", "SurrogateConfig", "format_validation_error",
           "load_campaign_config", "load_with_overrides", "one_line", "parse_campaign_config", "preflight",
           "preflighted", "resolve_templates", "simulation_settings"]


class CampaignConfig(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    seed: int = Field(default=0, ge=0)
    scenario: Scenario
    design: Design
    budget: Budget
    surrogate: SurrogateConfig = SurrogateConfig()
    planner: PlannerConfig = PlannerConfig()
    simulation: SimulationConfig = SimulationConfig()
    campaign: ModeConfig = ModeConfig()
    fidelity: list[FidelityLevel] = Field(default_factory=list, description="[[fidelity]] levels, cheapest first")
    fidelity_plan: FidelityPlan = FidelityPlan()

    @model_validator(mode="after")
    def _strategy_has_levels(self) -> CampaignConfig:
        if REGISTRY[self.planner.strategy].chooses_fidelity and not self.fidelity:
            raise ValueError(f"planner.strategy: {self.planner.strategy!r} needs [[fidelity]] levels")
        return self

    def round_seed(self, round_index: int) -> int:
        """The seed of round ``round_index``'s random choices (planner, scorers, stop rules):
        ``planners.design.round_seed``."""
        return round_seed(self.seed, round_index)

    def config_hash(self) -> str:
        # where simulations run, and the limits that refuse them, do not change what they compute
        placement = {"simulation": {"runner", "dask_address", "dask_workers", "max_memory_gb", "max_cells",
                                    "max_concurrent"},
                     "surrogate": {"max_memory_gb", "compile"}, "campaign": True}  # scheduling, fusion
        if self.simulation.simulator == "builtin":  # the hash of every config written before simulators existed
            placement["simulation"] |= {"simulator", "command", "openfoam"}
        if not self.fidelity:  # the hash of every config written before fidelities existed
            placement |= {"fidelity": True, "fidelity_plan": True}
        elif self.fidelity_plan.top_share is None:  # the hash of multi-fidelity configs written before it
            placement["fidelity_plan"] = {"top_share"}
        if self.budget.max_cpu_seconds is None:
            placement["budget"] = {"max_cpu_seconds"}
        for unset in ("training_memory_gb", "warm_start_batches", "judge_cases", "warm_start_sample"):  # the hash of configs before them
            if getattr(self.surrogate, unset) is None:
                placement["surrogate"] |= {unset}
        text = json.dumps(self.model_dump(mode="json", exclude=placement), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_overrides(self, **overrides: Any) -> CampaignConfig:
        """A copy with dotted-path overrides (``budget.rounds=3``), each section parsed again (the
        :func:`preflight` checks are the entry point's, on the config it runs)."""
        data = self.model_dump(mode="json")
        for path, value in overrides.items():
            try:
                set_path(data, path, value)
            except KeyError:
                raise ValueError(f"{path}: no such config field") from None
        return CampaignConfig.model_validate(data)


class ConfigError(ValueError):
    """A configuration that cannot be valid; the message names the file and the fields."""


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def preflight(config: CampaignConfig) -> None:
    """The checks that build scenarios and grids, run once on the config an entry point will run:
    every bound of the design gives a valid scenario, every feasible corner fits the simulation
    limits, some point of the design can run, and the fidelity levels refine the scenario's grid
    with the top level the most expensive. A ValueError whose message starts with the field."""
    design_fits_scenario(config.scenario, config.design)
    corners_fit(config.scenario, config.design, config.simulation)
    some_point_runs(config.scenario, config.design, config.seed)
    check_fidelities(config.fidelity, config.fidelity_plan, config.scenario, [p.name for p in config.design.parameters])


def preflighted(config: CampaignConfig, source: str) -> CampaignConfig:
    """``config`` once :func:`preflight` passes, else a :class:`ConfigError` naming ``source`` and the field."""
    try:
        preflight(config)
    except ValueError as err:
        raise ConfigError(f"{source}: invalid configuration\n  {err}") from None
    return config


def load_campaign_config(path: str | Path) -> CampaignConfig:
    """Read a campaign TOML (:func:`parse_campaign_config`) and :func:`preflight` it.

    Every failure is a :class:`ConfigError` naming the file: missing, not UTF-8 text, not TOML
    (with the position), or a field that cannot be valid.
    """
    return preflighted(parse_campaign_config(path), str(path))


def parse_campaign_config(path: str | Path) -> CampaignConfig:
    """A campaign TOML parsed, each section validated, without the :func:`preflight` checks;
    ``scenario = "file.toml"`` is resolved relative to the config file. A :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = read_toml(path)
        scen = data.get("scenario")
        if isinstance(scen, str):
            scen_path = (path.parent / scen).resolve()
            if not scen_path.is_file():
                raise ConfigError(f"{path}: scenario: file {scen!r} not found (looked at {scen_path})")
            data["scenario"] = read_toml(scen_path)
        resolve_templates(data, path.parent)
    except UnreadableFile as err:
        raise ConfigError(str(err)) from None
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path))) from None


def simulation_settings(simulator: str, settings: str | Path | None = None) -> SimulationConfig:
    """The ``[simulation]`` of ``closedloop simulate --simulator NAME --settings FILE``: FILE holds the
    simulator's table (``[simulation.command]`` or ``[simulation.openfoam]`` without its header);
    template paths in it are relative to FILE. A :class:`ConfigError` names the file and the field."""
    data: dict[str, Any] = {"simulator": simulator}
    source = f"--simulator {simulator}"
    if settings is not None:
        path = Path(settings)
        source = str(path)
        try:
            table = read_toml(path)
        except UnreadableFile as err:
            raise ConfigError(str(err)) from None
        if simulator not in ("command", "openfoam"):
            raise ConfigError(f"{path}: --settings is for the command and openfoam simulators, not {simulator!r}")
        data[simulator] = table
        resolve_templates({"simulation": data}, path.parent)
    try:
        return SimulationConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(one_line(format_validation_error(err, source).replace("  ", "simulation."))) from None


def resolve_templates(data: dict[str, Any], base: Path) -> None:
    """``[simulation.command] templates`` paths are relative to the config file, like ``scenario``."""
    command = (data.get("simulation") or {}).get("command")
    if isinstance(command, dict) and isinstance(command.get("templates"), dict):
        command["templates"] = {k: str((base / v).resolve()) if isinstance(v, str) else v
                                for k, v in command["templates"].items()}


def one_line(message: str) -> str:
    """A multi-line error message (a file, then one field per line) as one line, for a run's state."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def load_with_overrides(path: str | Path, **overrides: Any) -> CampaignConfig:
    """The campaign config with dotted-path overrides (``budget.rounds=3``; None leaves a field as
    configured), :func:`preflight` once on the result, or one :class:`ConfigError` in one line naming
    the file, the overrides and every field that cannot be valid: what a flow run's failed state says."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        config, source = parse_campaign_config(path), str(path)
        if given:
            source = f"{path} with " + ", ".join(f"{k.split('.')[-1]}={v!r}" for k, v in given.items())
            try:
                config = config.with_overrides(**given)
            except ValidationError as err:
                raise ConfigError(format_validation_error(err, source)) from None
            except ValueError as err:
                raise ConfigError(f"{path}: {err}") from None
        return preflighted(config, source)
    except ConfigError as err:
        raise ConfigError(one_line(str(err))) from None
