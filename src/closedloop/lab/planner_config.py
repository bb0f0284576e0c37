"""``[planner]`` of a campaign config: which strategy proposes the next batch (planners/strategies.py)
and how hard it searches.

The search settings are those of :class:`closedloop.planners.strategies.PlannerSettings`, and take
its defaults (one declaration per setting); :meth:`PlannerConfig.settings` hands them over by name.
One default differs on purpose: ``candidates``, 64 here against the library's 256, since a campaign
scores each candidate by rolling out its surrogate (``ensemble_members`` models for ``ensemble``,
``information_directions`` + 1 rollouts for ``information``), where the library's default is sized
for a cheap score. ``strategy`` and the scorers' own fields (``ensemble_members``,
``information_*``) are the campaign's (lab/campaign/propose.py), not the planner library's.
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from pydantic import Field, field_validator

from closedloop.planners.strategies import REGISTRY, PlannerSettings
from closedloop.schema import Strict

Finite = Annotated[float, Field(allow_inf_nan=False)]


class PlannerConfig(Strict):
    """Which strategy proposes the next batch (planners/strategies.py) and its search settings."""

    strategy: str = Field(default="error", description="A registered strategy (planners/strategies.REGISTRY)")
    acquisition: Literal["qucb", "qlognei", "error_ivr"] = Field(default=PlannerSettings.acquisition,
                                                                 description="Batch acquisition of 'error'")
    optimizer: Literal["lbfgs", "pool"] = Field(default=PlannerSettings.optimizer)
    beta: Finite = Field(default=PlannerSettings.beta, ge=0)
    num_restarts: int = Field(default=PlannerSettings.num_restarts, ge=1)
    raw_samples: int = Field(default=PlannerSettings.raw_samples, ge=8)
    mc_samples: int = Field(default=PlannerSettings.mc_samples, ge=8)
    maxiter: int = Field(default=PlannerSettings.maxiter, ge=1, description="L-BFGS-B iterations per restart")
    failure_radius: Finite = Field(default=PlannerSettings.failure_radius, ge=0, le=1,
                                   description="Unit-cube radius around a failed case that is not proposed again")
    ensemble_members: int = Field(default=3, ge=2, le=16, description="Snapshot models of 'ensemble'")
    information_directions: int = Field(default=16, ge=1, le=256,
                                        description="Random parameter directions of 'information' (its sketched Fisher)")
    information_differences: Literal["forward", "central"] = Field(
        default="forward", description="Finite differences of the sketch: forward (K + 1 rollouts) or central (2K)")
    candidates: int = Field(default=64, ge=8, le=4096, description="Candidates 'ensemble' scores (each by "
                            "surrogate rollouts: fewer than the planner library's default)")

    @field_validator("strategy")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in REGISTRY:
            raise ValueError(f"Input should be one of {', '.join(repr(n) for n in REGISTRY)} (a registered "
                             f"strategy; got {name!r})")
        return name

    def settings(self) -> PlannerSettings:
        """The planner's settings: this table's fields of that name; the library's defaults for the rest."""
        return PlannerSettings(**self.model_dump(include=set(SETTINGS_FIELDS)))


SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(PlannerSettings)) & PlannerConfig.model_fields.keys()
