"""[[fidelity]] levels and [fidelity_plan]: bad setups refused naming the field, hashes kept."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.lab.config import ConfigError, load_campaign_config
from closedloop.lab.fidelity_config import fidelity_value
from tests.lab.config_text import altered, smoke_text, write

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
"""


def mf_text(levels: str = LEVELS) -> str:
    return smoke_text() + levels


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_campaign_config(write(tmp_path, text))
    return str(err.value)


def test_two_levels_load_cheapest_first(tmp_path):
    config = load_campaign_config(write(tmp_path, mf_text()))
    assert [lv.name for lv in config.fidelity] == ["coarse", "fine"]
    assert config.fidelity[0].overrides() == {"room.cell_size": 0.5, "numerics.advection": "upwind",
                                              "numerics.time_stepping": "euler"}
    assert fidelity_value(config.fidelity, "coarse") == 0.0 and fidelity_value(config.fidelity, "fine") == 1.0


def test_unknown_level_is_refused_naming_the_field(tmp_path):
    msg = refused(tmp_path, altered(mf_text(), "initial = { coarse = 3, fine = 1 }",
                                    "initial = { coarse = 3, medium = 1 }"))
    assert "fidelity_plan.initial.medium: unknown level" in msg


def test_non_refining_cell_size_is_refused_naming_the_level(tmp_path):
    msg = refused(tmp_path, altered(mf_text(), "cell_size = 0.25", "cell_size = 0.3"))
    assert "fidelity.1.cell_size" in msg and "does not refine" in msg


def test_top_level_must_be_the_most_expensive(tmp_path):
    swapped = LEVELS.replace('name = "coarse"', 'name = "tmp"').replace('name = "fine"', 'name = "coarse"') \
        .replace('name = "tmp"', 'name = "fine"').replace("cell_size = 0.5", "cell_size = X") \
        .replace("cell_size = 0.25", "cell_size = 0.5").replace("cell_size = X", "cell_size = 0.25")
    msg = refused(tmp_path, mf_text(swapped))
    assert "fidelity: the top level (the last, 'coarse') must be the most expensive" in msg


def test_one_level_and_a_reserved_parameter_name_are_refused(tmp_path):
    one = LEVELS.split("[[fidelity]]\nname = \"fine\"")[0].replace("initial = { coarse = 3, fine = 1 }", "")
    assert "at least 2 levels" in refused(tmp_path, mf_text(one + "\n[fidelity_plan]\n"))
    assert "'multifidelity' needs [[fidelity]] levels" in refused(
        tmp_path, altered(smoke_text(), 'strategy = "variance"', 'strategy = "multifidelity"'))
    assert "fidelity_plan.initial: given, but no [[fidelity]]" in refused(
        tmp_path, smoke_text() + "\n[fidelity_plan]\ninitial = { fine = 2 }\n")


def test_config_hash_unchanged_without_fidelities_and_changed_by_a_level(tmp_path):
    plain = load_campaign_config(write(tmp_path, smoke_text(), "a.toml"))
    explicit = plain.with_overrides(fidelity=[])
    assert plain.config_hash() == explicit.config_hash()
    assert plain.with_overrides(**{"budget.max_cpu_seconds": 10.0}).config_hash() != plain.config_hash()
    mf = load_campaign_config(write(tmp_path, mf_text(), "c.toml"))
    other = load_campaign_config(write(tmp_path, altered(mf_text(), "cell_size = 0.25", "cell_size = 0.125"), "d.toml"))
    assert mf.config_hash() != other.config_hash() != plain.config_hash()


def test_async_mode_takes_levels(tmp_path):
    config = load_campaign_config(write(tmp_path, mf_text() + '\n[campaign]\nmode = "async"\n', "c.toml"))
    assert config.campaign.mode == "async" and [lv.name for lv in config.fidelity] == ["coarse", "fine"]
