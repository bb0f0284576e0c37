"""``[simulation]``: the simulator and its settings table, checked before any compute, naming the field;
the config hash of every built-in campaign unchanged by the simulator fields."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from closedloop.lab.config import ConfigError, load_campaign_config, simulation_settings
from closedloop.lab.simulation_config import SimulationConfig
from tests.conftest import fast_config_text

GOLDEN_SMOKE_HASH = "83f9f5ac2d3a04de"  # configs/smoke.toml with the learner (issue 25) and numerics.stages (issue 24); simulator fields at their defaults leave it alone


def test_builtin_configs_keep_their_hash_and_ids():
    from tests.conftest import SMOKE

    config = load_campaign_config(SMOKE)
    assert config.config_hash() == GOLDEN_SMOKE_HASH
    assert config.simulation.producer() is None


def test_command_needs_its_table_and_the_table_its_simulator():
    with pytest.raises(ValueError, match=r'command: simulator = "command" needs a \[simulation.command\] table'):
        SimulationConfig(simulator="command")
    with pytest.raises(ValueError, match='only used with simulator = "command"'):
        SimulationConfig(command={"command": ["run"]})
    with pytest.raises(ValueError, match="simulator"):
        SimulationConfig(simulator="fluent")


def test_templates_are_relative_to_the_config_file_and_enter_the_hash(tmp_path: Path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "in.tpl").write_text("x = {{ source.x }}\n")
    text = fast_config_text().replace("[simulation]\n", f'[simulation]\nsimulator = "command"\n', 1)
    text += f'\n[simulation.command]\ncommand = ["{sys.executable}", "run.py"]\ntemplates = {{ "in.txt" = "tpl/in.tpl" }}\n'
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    config = load_campaign_config(cfg)
    assert config.simulation.command.templates["in.txt"] == (tmp_path / "tpl" / "in.tpl").resolve()
    assert config.config_hash() != load_campaign_config(SMOKE_FAST(tmp_path)).config_hash()
    identity = config.simulation.producer()
    assert identity["templates"] == {"in.txt": "x = {{ source.x }}\n"}
    (tmp_path / "tpl" / "in.tpl").write_text("x = {{ source.y }}\n")
    assert load_campaign_config(cfg).simulation.producer() != identity  # another input deck, other cases


def SMOKE_FAST(tmp_path: Path) -> Path:
    path = tmp_path / "plain.toml"
    path.write_text(fast_config_text())
    return path


def test_simulate_settings_file_errors_name_file_and_field(tmp_path: Path):
    bad = tmp_path / "cmd.toml"
    bad.write_text('command = ["run"]\nreader = "xlsx"\n')
    with pytest.raises(ConfigError, match=r"cmd.toml.*simulation.command.reader"):
        simulation_settings("command", bad)
    with pytest.raises(ConfigError, match="not found"):
        simulation_settings("command", tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="--settings is for the command and openfoam simulators"):
        simulation_settings("builtin", bad)
    assert simulation_settings("builtin").simulator == "builtin"
