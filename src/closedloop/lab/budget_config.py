"""``[budget]`` of a campaign config: how many rounds and cases, and the rules that stop a campaign
early (an error target, the GP's expected maximum error, patience, a simulation or compute budget)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from closedloop.schema import Strict

Finite = Annotated[float, Field(allow_inf_nan=False)]


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
