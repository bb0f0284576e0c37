"""Fixtures for the surrogate tests: the room scenario cut to a few output intervals, its plane problem, and
random weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from closedloop.simulators import load_scenario
from closedloop.surrogates.coupling import plane_problem

ROOM = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "room.toml"


@pytest.fixture(scope="session")
def room_scenario():
    """Three output intervals of 10 s."""
    return load_scenario(ROOM).with_parameters({"time.horizon": 30.0})


def randomise(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Give every parameter (the closure head included) float64 noise, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


@pytest.fixture()
def randomiser():
    return randomise


@pytest.fixture(scope="module")
def problem(room_scenario):
    return plane_problem(room_scenario)
