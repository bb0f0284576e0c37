"""What to steer and how hard to search: the steering parameters, declared once.

The ``steer`` flow takes exactly these fields as its parameters and the ``closedloop steer``
command as its options (a test holds the three together).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from closedloop.schema import Strict


MEASURES = ("distance", "mass", "peak", "centroid_x", "centroid_y", "spread", "decay_rate")


class SteeringConfig(Strict):
    """What to steer and how hard to search. Checked against the campaign before any compute."""

    concept: str = Field(default="inlet_speed", min_length=1,
                         description="A design parameter of the campaign, e.g. inlet_speed or source_x")
    toward: Literal["high", "low"] = Field(default="high", description="The regime the direction points to")
    split: float | None = Field(default=None, allow_inf_nan=False,
                                description="Group A/B boundary of the parameter (default: its median)")
    layers: list[str] | None = Field(default=None, description="Candidate layers (default: the closure's "
                                                                 "convolutions)")
    base_cases: int = Field(default=2, ge=1, le=64, description="Held-out cases of the other regime to steer")
    alpha_min: float = Field(default=-2.0, allow_inf_nan=False, description="Smallest steering strength α")
    alpha_max: float = Field(default=2.0, allow_inf_nan=False, description="Largest steering strength α")
    initial_experiments: int = Field(default=6, ge=2, le=256, description="Sobol experiments before BoTorch")
    rounds: int = Field(default=3, ge=0, le=100, description="BoTorch rounds")
    batch_size: int = Field(default=2, ge=1, le=32, description="Experiments per BoTorch round")
    dose_points: int = Field(default=9, ge=3, le=101, description="α values of the dose-response")
    n_bootstrap: int = Field(default=100, ge=0, le=10000, description="Bootstrap resamples of Δ")
    reduce: Literal["space_mean", "field"] = Field(
        default="space_mean", description="Δ per channel (mean over the plane, the paper's 'drop' mode) or "
                                          "a full (C, nx, ny) map (keeps where on the plane the concept acts)")
    seed: int = Field(default=0, ge=0, description="Seed of the bootstrap and the search")
    device: str = Field(default="cpu", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="Where the target references are simulated")

    @model_validator(mode="after")
    def _alpha(self) -> SteeringConfig:
        if not self.alpha_min < self.alpha_max:
            raise ValueError(f"alpha_min ({self.alpha_min}) must be below alpha_max ({self.alpha_max})")
        return self

    @property
    def name(self) -> str:
        return f"{self.concept}_{self.toward}" + ("_field" if self.reduce == "field" else "")
