"""A two-level campaign for the fidelity tests: the fast smoke config (30 s horizon) with a coarse
level (0.5 m, upwind, Euler) and the top level (0.25 m, TVD + SSP-RK2)."""
from __future__ import annotations

from pathlib import Path

from closedloop.lab.config import CampaignConfig, load_campaign_config
from tests.conftest import ROOM, fast_config_text

LEVELS = """
[[fidelity]]
name = "coarse"
cell_size = 0.5
numerics = { advection = "upwind", time_stepping = "euler" }

[[fidelity]]
name = "fine"
cell_size = 0.25

[fidelity_plan]
initial = { coarse = 3, fine = 1 }
mix = { coarse = 2, fine = 1 }
"""


def mf_text(**replace: str) -> str:
    text = fast_config_text(**replace)
    return text + LEVELS


def mf_config(tmp_path: Path, **replace: str) -> CampaignConfig:
    path = tmp_path / "mf.toml"
    path.write_text(mf_text(**replace))
    return load_campaign_config(path).with_overrides(**{"scenario.time.horizon": 30.0})


def mf_config_file(tmp_path: Path, **replace: str) -> Path:
    """The two-level campaign as a file, its scenario the office cut to 30 s (3 output intervals)."""
    room = tmp_path / "room30.toml"
    text = ROOM.read_text()
    assert "horizon = 120.0" in text
    room.write_text(text.replace("horizon = 120.0", "horizon = 30.0"))
    path = tmp_path / "mf.toml"
    path.write_text(mf_text(**replace).replace(f'scenario = "{ROOM.as_posix()}"', f'scenario = "{room.as_posix()}"'))
    return path
