"""Campaign configuration: pydantic models loaded from TOML, checked before any compute.

Every error names its field (pydantic's location, e.g. ``budget.rounds``) and the reason.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from closedloop.lab.design_checks import corners_fit, some_point_runs
from closedloop.lab.fidelity_config import FidelityLevel, FidelityPlan, check_fidelities
from closedloop.lab.modes import ModeConfig
from closedloop.planners.design import DesignSpace
from closedloop.planners.strategies import REGISTRY, PlannerSettings
from closedloop.schema import Strict, UnreadableFile, read_toml
from closedloop.lab.simulation_config import SimulationConfig
from closedloop.lab.surrogate_config import SurrogateConfig
from closedloop.simulators.scenario import Scenario, set_path

Finite = Annotated[float, Field(allow_inf_nan=False)]


class DesignParameter(Strict):
    """One design variable: a dotted path into the scenario and its bounds.

    ``kind``: ``continuous`` (any value in [low, high]), ``integer`` (whole values in [low, high]) or
    ``categorical`` (one of ``choices``; the design space holds its index 0 … k−1, no low/high).
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    path: str = Field(min_length=1, description="Dotted path into the scenario, e.g. source.x")
    kind: Literal["continuous", "integer", "categorical"] = "continuous"
    low: Finite | None = None
    high: Finite | None = None
    choices: list[Finite] | None = Field(default=None, description="Values of a categorical parameter")

    @model_validator(mode="after")
    def _ordered(self) -> DesignParameter:
        if self.kind == "categorical":
            if self.choices is None or len(self.choices) < 2:
                raise ValueError("choices: a categorical parameter needs at least 2 choices")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError(f"choices: must be distinct, got {self.choices}")
            if self.low is not None or self.high is not None:
                raise ValueError("low/high: a categorical parameter takes choices, not bounds")
            return self
        if self.choices is not None:
            raise ValueError(f"choices: only for kind = 'categorical' (kind is {self.kind!r})")
        if self.low is None or self.high is None:
            raise ValueError(f"low and high: required for a {self.kind} parameter")
        if not self.low < self.high:
            raise ValueError(f"bounds reversed or empty: low ({self.low}) must be below high ({self.high})")
        if self.kind == "integer" and (self.low != round(self.low) or self.high != round(self.high)):
            raise ValueError(f"an integer parameter needs whole bounds, got low {self.low}, high {self.high}")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        """Bounds in the design space (a categorical parameter's index runs 0 … k−1)."""
        if self.kind == "categorical":
            return 0.0, float(len(self.choices) - 1)  # type: ignore[arg-type]
        return float(self.low), float(self.high)  # type: ignore[arg-type]

    def scenario_value(self, value: float) -> float:
        """The value written into the scenario for a design-space coordinate."""
        if self.kind == "categorical":
            return float(self.choices[int(round(value))])  # type: ignore[index]
        return float(round(value)) if self.kind == "integer" else float(value)


class Design(Strict):
    parameters: list[DesignParameter] = Field(min_length=1)

    @field_validator("parameters")
    @classmethod
    def _unique(cls, params: list[DesignParameter]) -> list[DesignParameter]:
        for attr in ("name", "path"):
            values = [getattr(p, attr) for p in params]
            if len(set(values)) != len(values):
                raise ValueError(f"parameter {attr}s must be unique, got {values}")
        return params

    def space(self) -> DesignSpace:
        return DesignSpace(names=tuple(p.name for p in self.parameters),
                           lower=tuple(p.bounds[0] for p in self.parameters),
                           upper=tuple(p.bounds[1] for p in self.parameters),
                           integer=tuple(p.kind != "continuous" for p in self.parameters))

    def moves_geometry(self) -> bool:
        """Whether a parameter changes the room, its obstacles or where its vents open (so the
        grid's connectivity can differ between design points)."""
        fixed = ("speed", "direction")
        return any(p.path.startswith(("room.", "obstacles.", "exhausts."))
                   or (p.path.startswith("inlets.") and not p.path.endswith(fixed)) for p in self.parameters)

    def scenario_values(self, params: dict[str, float]) -> dict[str, float]:
        """Design-space values by name → scenario values by dotted path."""
        by_name = {p.name: p for p in self.parameters}
        return {by_name[k].path: by_name[k].scenario_value(v) for k, v in params.items()}


class Budget(Strict):
    rounds: int = Field(ge=1, le=1000)
    initial_cases: int = Field(ge=2, description="Sobol cases of round 0 (the GP needs two or more)")
    batch_size: int = Field(ge=2, description="Cases proposed per later round (q of the batch acquisition)")
    error_target: Finite | None = Field(default=None, gt=0,
                                        description="Stop when a round's mean validation relative L2 is below")
    max_cases: int | None = Field(default=None, ge=2,
                                  description="Simulation budget: stop once this many cases are done or failed")
    max_error_target: Finite | None = Field(
        default=None, gt=0, description="Stop when the error GP's expected maximum relative L2 over the space is below")
    patience: int | None = Field(default=None, ge=1,
                                 description="Stop after this many rounds without a better round-mean error")
    min_improvement: Finite = Field(default=0.0, ge=0, lt=1,
                                    description="Relative improvement that counts for patience")
    max_cpu_seconds: Finite | None = Field(default=None, gt=0,
                                           description="Compute budget: stop once the cases' CPU-seconds reach it")

    @model_validator(mode="after")
    def _cases(self) -> Budget:
        if self.max_cases is not None and self.max_cases < self.initial_cases:
            raise ValueError(f"max_cases ({self.max_cases}) is below initial_cases ({self.initial_cases})")
        return self


class PlannerConfig(Strict):
    """Which strategy proposes the next batch (planners/strategies.py) and its search settings."""

    strategy: str = Field(default="error", description="A registered strategy (planners/strategies.REGISTRY)")
    acquisition: Literal["qucb", "qlognei", "error_ivr"] = Field(default="qucb",
                                                                 description="Batch acquisition of 'error'")
    optimizer: Literal["lbfgs", "pool"] = "lbfgs"
    beta: Finite = Field(default=4.0, ge=0)
    num_restarts: int = Field(default=4, ge=1)
    raw_samples: int = Field(default=128, ge=8)
    mc_samples: int = Field(default=64, ge=8)
    maxiter: int = Field(default=50, ge=1, description="L-BFGS-B iterations per restart")
    failure_radius: Finite = Field(default=0.1, ge=0, le=1,
                                   description="Unit-cube radius around a failed case that is not proposed again")
    ensemble_members: int = Field(default=3, ge=2, le=16, description="Snapshot models of 'ensemble'")
    information_directions: int = Field(default=16, ge=1, le=256,
                                        description="Random parameter directions of 'information' (its sketched Fisher)")
    information_differences: Literal["forward", "central"] = Field(
        default="forward", description="Finite differences of the sketch: forward (K + 1 rollouts) or central (2K)")
    candidates: int = Field(default=64, ge=8, le=4096, description="Candidates 'ensemble' scores")

    @field_validator("strategy")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in REGISTRY:
            raise ValueError(f"Input should be one of {', '.join(repr(n) for n in REGISTRY)} (a registered "
                             f"strategy; got {name!r})")
        return name

    def settings(self) -> PlannerSettings:
        return PlannerSettings(acquisition=self.acquisition, beta=self.beta, num_restarts=self.num_restarts,
                               raw_samples=self.raw_samples, mc_samples=self.mc_samples, maxiter=self.maxiter,
                               optimizer=self.optimizer, failure_radius=self.failure_radius,
                               candidates=self.candidates)


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
    def _design_fits_scenario(self) -> CampaignConfig:
        for i, p in enumerate(self.design.parameters):
            values = [("low bound", p.low), ("high bound", p.high)] if p.kind != "categorical" else \
                [(f"choice {k}", c) for k, c in enumerate(p.choices or [])]
            for label, value in values:
                try:
                    self.scenario.with_parameters({p.path: value})
                except KeyError as err:
                    raise ValueError(f"design.parameters.{i}.path: {err.args[0]}") from None
                except ValidationError as err:
                    first = err.errors()[0]
                    raise ValueError(f"design.parameters.{i} ({p.name}): at its {label} {value} "
                                     f"the scenario is invalid: {first['msg']}") from None
        return self

    @model_validator(mode="after")
    def _simulations_fit(self) -> CampaignConfig:
        corners_fit(self)
        return self

    @model_validator(mode="after")
    def _design_has_feasible_points(self) -> CampaignConfig:
        some_point_runs(self)
        return self

    @model_validator(mode="after")
    def _fidelities(self) -> CampaignConfig:
        check_fidelities(self.fidelity, self.fidelity_plan, self.scenario, [p.name for p in self.design.parameters])
        if REGISTRY[self.planner.strategy].chooses_fidelity and not self.fidelity:
            raise ValueError(f"planner.strategy: {self.planner.strategy!r} needs [[fidelity]] levels")
        return self

    def round_seed(self, round_index: int) -> int:
        """The seed of round ``round_index``'s random choices (planner, scorers, stop rules): ``seed·1000 + round``."""
        return self.seed * 1000 + round_index

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
        for unset in ("training_memory_gb", "warm_start_batches", "judge_cases"):  # the hash of configs before them
            if getattr(self.surrogate, unset) is None:
                placement["surrogate"] |= {unset}
        text = json.dumps(self.model_dump(mode="json", exclude=placement), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_overrides(self, **overrides: Any) -> CampaignConfig:
        """A copy with dotted-path overrides (``budget.rounds=3``), validated again."""
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


def load_campaign_config(path: str | Path) -> CampaignConfig:
    """Read a campaign TOML; ``scenario = "file.toml"`` is resolved relative to the config file.

    Every failure is a :class:`ConfigError` naming the file: missing, not UTF-8 text, not TOML
    (with the position), or a field that cannot be valid.
    """
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
    configured), or one :class:`ConfigError` in one line naming the file, the overrides and every
    field that cannot be valid: what a flow run's failed state says."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        config = load_campaign_config(path)
        if not given:
            return config
        try:
            return config.with_overrides(**given)
        except ValidationError as err:
            source = f"{path} with " + ", ".join(f"{k.split('.')[-1]}={v!r}" for k, v in given.items())
            raise ConfigError(format_validation_error(err, source)) from None
        except ValueError as err:
            raise ConfigError(f"{path}: {err}") from None
    except ConfigError as err:
        raise ConfigError(one_line(str(err))) from None
