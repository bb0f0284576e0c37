"""The base of every configuration model (scenario, campaign, steering): strict and immutable.

Unknown fields are refused (a typo names its field instead of being ignored) and a validated
model cannot be changed afterwards (derive a new one with ``model_copy`` or ``with_*`` helpers).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
