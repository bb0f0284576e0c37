"""``[design]`` of a campaign config: the design variables, each a dotted path into the scenario and
its bounds (or choices), and the design space they span (planners/design.py).

A parameter's own checks (bounds ordered, whole bounds for an integer, distinct choices) and the
table's (unique names and paths) run at parse; whether its bounds give a valid scenario is a
preflight check (lab/design_checks.py), since it builds scenarios.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from closedloop.planners.design import DesignSpace
from closedloop.schema import Strict

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

    def extremes(self) -> list[tuple[str, float]]:
        """The scenario values at the ends of its range, labelled: its bounds, or each of its choices."""
        if self.kind == "categorical":
            return [(f"choice {k}", c) for k, c in enumerate(self.choices or [])]
        return [("low bound", self.low), ("high bound", self.high)]  # type: ignore[list-item]

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
