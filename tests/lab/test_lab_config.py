"""Campaign configs: every malformed config fails at load time with a ConfigError naming the field."""
from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from closedloop.lab.config import CampaignConfig, ConfigError, load_campaign_config
from tests.lab.config_text import REPO, ROOM_TOML, SMOKE_TOML, altered, smoke_text, write
from tests.lab.planner_ledgers import planner_config


def inline_text() -> str:
    """smoke.toml with the room scenario inlined as a [scenario] table."""
    head, rest = [], []
    target = head
    for line in smoke_text().splitlines():
        if line.startswith("scenario ="):
            continue
        if line.startswith("["):
            target = rest
        target.append(line)
    scen = ["[scenario]"]
    for line in ROOM_TOML.read_text().splitlines():
        line = re.sub(r"^\[\[(\w+)\]\]", r"[[scenario.\1]]", line)
        line = re.sub(r"^\[(\w+)\]", r"[scenario.\1]", line)
        scen.append(line)
    return "\n".join(head + scen + rest) + "\n"


@pytest.fixture(scope="module")
def config() -> CampaignConfig:
    """The smoke campaign with fast planner settings (for the planner's fields)."""
    return planner_config()


def test_smoke_config_loads(tmp_path):
    cfg = load_campaign_config(SMOKE_TOML)
    assert cfg.name == "smoke" and cfg.seed == 7
    assert [p.name for p in cfg.design.parameters] == ["source_x", "source_y", "inlet_speed"]
    assert cfg.budget.rounds == 2 and cfg.budget.batch_size == 4
    assert cfg.scenario.room.size == (10.0, 6.0, 3.0)
    space = cfg.design.space()
    assert space.names == ("source_x", "source_y", "inlet_speed")
    assert space.lower == (1.0, 0.75, 0.3) and space.upper == (9.0, 5.25, 1.5)
    # the variants the malformed cases start from are valid
    assert load_campaign_config(write(tmp_path, smoke_text(), "abs.toml")) == cfg
    assert load_campaign_config(write(tmp_path, inline_text(), "inline.toml")) == cfg


BAD_CONFIGS = {
    "bounds_reversed": (
        lambda: altered(smoke_text(), "low = 1.0\nhigh = 9.0", "low = 9.0\nhigh = 1.0"),
        ["design.parameters.0", "bounds reversed"]),
    "unknown_top_level_key": (
        lambda: altered(smoke_text(), "seed = 7", "seed = 7\ncolour = \"red\""),
        ["colour", "Extra inputs are not permitted"]),
    "unknown_nested_key": (
        lambda: altered(smoke_text(), "rounds = 2", "rounds = 2\nroundz = 3"),
        ["budget.roundz"]),
    "unknown_key_in_parameter": (
        lambda: altered(smoke_text(), 'path = "source.x"', 'path = "source.x"\nstep = 0.5'),
        ["design.parameters.0.step"]),
    "source_outside_room_at_high_bound": (
        lambda: altered(smoke_text(), "low = 1.0\nhigh = 9.0", "low = 1.0\nhigh = 10.5"),
        ["design.parameters.0", "source_x", "high bound", "source.x"]),
    "source_outside_room_at_low_bound": (
        lambda: altered(smoke_text(), "low = 0.75\nhigh = 5.25", "low = -0.5\nhigh = 5.25"),
        ["design.parameters.1", "source_y", "low bound"]),
    "design_path_does_not_exist": (
        lambda: altered(smoke_text(), 'path = "source.x"', 'path = "source.w"'),
        ["design.parameters.0.path", "'w'"]),
    "design_path_bad_list_index": (
        lambda: altered(smoke_text(), 'path = "inlets.0.speed"', 'path = "inlets.3.speed"'),
        ["design.parameters.2.path"]),
    "negative_eddy_diffusivity_inline": (
        lambda: altered(inline_text(), "eddy_diffusivity = 0.02", "eddy_diffusivity = -0.02"),
        ["scenario.eddy_diffusivity", "greater than 0"]),
    "inline_source_inside_pillar": (
        lambda: altered(inline_text(), "x = 2.5\ny = 4.0", "x = 5.0\ny = 3.0"),
        ["scenario", "pillar"]),
    "rounds_zero": (
        lambda: altered(smoke_text(), "rounds = 2", "rounds = 0"),
        ["budget.rounds", "greater than or equal to 1"]),
    "batch_size_one": (
        lambda: altered(smoke_text(), "batch_size = 4", "batch_size = 1"),
        ["budget.batch_size"]),
    "initial_cases_one": (
        lambda: altered(smoke_text(), "initial_cases = 4", "initial_cases = 1"),
        ["budget.initial_cases"]),
    "unknown_information_differences": (
        lambda: altered(smoke_text(), 'strategy = "variance"', 'strategy = "variance"\ninformation_differences = "backward"'),
        ["planner.information_differences", "'forward'"]),
    "unknown_planner_strategy": (
        lambda: altered(smoke_text(), 'strategy = "variance"', 'strategy = "greedy"'),
        ["planner.strategy", "'error'"]),
    "negative_learning_rate": (
        lambda: altered(smoke_text(), "learning_rate = 1e-3", "learning_rate = -1e-3"),
        ["surrogate.learning_rate"]),
    "duplicate_parameter_names": (
        lambda: altered(smoke_text(), 'name = "source_y"', 'name = "source_x"'),
        ["design.parameters", "unique"]),
    "duplicate_parameter_paths": (
        lambda: altered(smoke_text(), 'path = "source.y"', 'path = "source.x"'),
        ["design.parameters", "paths must be unique"]),
    "nan_bound": (
        lambda: altered(smoke_text(), "high = 5.25", "high = nan"),
        ["design.parameters.1.high"]),
    "missing_scenario_file": (
        lambda: altered(smoke_text(), f'scenario = "{ROOM_TOML.as_posix()}"',
                        'scenario = "scenarios/no_such_room.toml"'),
        ["scenario", "no_such_room.toml", "not found"]),
    "not_toml": (
        lambda: altered(smoke_text(), "rounds = 2", "rounds = = 2"),
        ["not valid TOML"]),
    "invalid_device": (
        lambda: altered(smoke_text(), 'device = "cpu"', 'device = "gpu0"'),
        ["simulation.device"]),
    "missing_budget": (
        lambda: re.sub(r"\[budget\][^\[]*", "", smoke_text()),
        ["budget", "Field required"]),
    "bad_campaign_name": (
        lambda: altered(smoke_text(), 'name = "smoke"', 'name = "my campaign"'),
        ["  name: ", "pattern"]),
    "negative_retries": (
        lambda: altered(smoke_text(), "retries = 2", "retries = -1"),
        ["simulation.retries"]),
    "unknown_closure_form": (
        lambda: altered(smoke_text(), "tbptt_steps = 4", 'tbptt_steps = 4\nclosure_form = "gated"'),
        ["surrogate.closure_form", "'multiplicative'"]),
    "multiplicative_data_only": (
        lambda: altered(smoke_text(), "tbptt_steps = 4",
                        'tbptt_steps = 4\nclosure_form = "multiplicative"\nvariant = "data_only"'),
        ["closure_form", "data_only"]),
    "negative_physics_warmup": (
        lambda: altered(smoke_text(), "tbptt_steps = 4", "tbptt_steps = 4\nphysics_warmup_epochs = -2"),
        ["surrogate.physics_warmup_epochs"]),
    "bad_training_device": (
        lambda: altered(smoke_text(), "tbptt_steps = 4", 'tbptt_steps = 4\ndevice = "tpu"'),
        ["surrogate.device"]),
    "closure_gain_above_one": (
        lambda: altered(smoke_text(), "tbptt_steps = 4", "tbptt_steps = 4\nclosure_gain = 1.5"),
        ["surrogate.closure_gain", "less than or equal to 1"]),
    "unknown_closure_scale": (
        lambda: altered(smoke_text(), "tbptt_steps = 4", 'tbptt_steps = 4\nclosure_scale = "max"'),
        ["surrogate.closure_scale", "'mixed'"]),
    "zero_training_batch": (
        lambda: altered(smoke_text(), "tbptt_steps = 4", "tbptt_steps = 4\nbatch_size = 0"),
        ["surrogate.batch_size"]),
    "zero_physics_learning_rate": (
        lambda: altered(smoke_text(), "tbptt_steps = 4", "tbptt_steps = 4\nphysics_learning_rate = 0"),
        ["surrogate.physics_learning_rate"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_malformed_config_raises_config_error_naming_field(tmp_path, case):
    make, needles = BAD_CONFIGS[case]
    path = write(tmp_path, make())
    with pytest.raises(ConfigError) as info:
        load_campaign_config(path)
    msg = str(info.value)
    assert str(path) in msg or path.name in msg or "no_such_room" in msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in message:\n{msg}"


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_campaign_config(tmp_path / "nope.toml")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_config_is_frozen():
    cfg = load_campaign_config(SMOKE_TOML)
    with pytest.raises(ValidationError):
        cfg.seed = 3  # type: ignore[misc]


# ------------------------------------------------------------------------ hash and overrides
def test_config_hash_stable_and_sensitive(tmp_path):
    a = load_campaign_config(SMOKE_TOML)
    b = load_campaign_config(write(tmp_path, inline_text()))
    assert a.config_hash() == b.config_hash() == a.config_hash()
    assert re.fullmatch(r"[0-9a-f]{16}", a.config_hash())
    assert a.with_overrides(**{"budget.rounds": 3}).config_hash() != a.config_hash()
    assert a.with_overrides(seed=8).config_hash() != a.config_hash()
    assert a.with_overrides(**{"scenario.eddy_diffusivity": 0.03}).config_hash() != a.config_hash()
    # setting a field to its current value changes nothing
    assert a.with_overrides(**{"budget.rounds": 2}).config_hash() == a.config_hash()


def test_training_memory_budget_field():
    """It chooses the mini-batch, so it is hashed when set (left at its default it is not, so configs
    written before it keep their hash). Refused unless positive, by name."""
    a = load_campaign_config(SMOKE_TOML)
    assert a.surrogate.training_memory_gb is None
    assert a.with_overrides(**{"surrogate.training_memory_gb": 1.5}).config_hash() != a.config_hash()
    assert a.with_overrides(**{"surrogate.training_memory_gb": None}).config_hash() == a.config_hash()
    with pytest.raises(ValidationError, match=r"surrogate.training_memory_gb"):
        a.with_overrides(**{"surrogate.training_memory_gb": 0})


def test_simulation_runner_fields(tmp_path):
    cfg = load_campaign_config(SMOKE_TOML)
    assert (cfg.simulation.runner, cfg.simulation.dask_address, cfg.simulation.dask_workers) == ("threads", None, 2)
    dask = cfg.with_overrides(**{"simulation.runner": "dask", "simulation.dask_address": "tcp://127.0.0.1:8786"})
    # where simulations run does not change what they compute
    assert dask.config_hash() == cfg.config_hash()
    cases = [("runner = \"cluster\"", "simulation.runner"),
             ("dask_address = \"tcp://127.0.0.1:8786\"", r"simulation: dask_address: .*runner = \"dask\""),
             ("runner = \"dask\"\ndask_address = \"localhost\"", "simulation.dask_address: expected a scheduler"),
             ("runner = \"dask\"\ndask_workers = 0", "simulation.dask_workers")]
    for extra, match in cases:
        text = smoke_text().replace("[simulation]\n", f"[simulation]\n{extra}\n")
        with pytest.raises(ConfigError, match=match):
            load_campaign_config(write(tmp_path, text))


def test_with_overrides_returns_validated_copy():
    cfg = load_campaign_config(SMOKE_TOML)
    new = cfg.with_overrides(**{"budget.rounds": 5, "planner.strategy": "sobol", "seed": 1})
    assert (new.budget.rounds, new.planner.strategy, new.seed) == (5, "sobol", 1)
    assert (cfg.budget.rounds, cfg.planner.strategy, cfg.seed) == (2, "variance", 7)
    assert isinstance(new, CampaignConfig)


def test_with_overrides_rejects_invalid_value_naming_field():
    cfg = load_campaign_config(SMOKE_TOML)
    with pytest.raises(ValueError, match=r"budget\.rounds"):
        cfg.with_overrides(**{"budget.rounds": 0})
    with pytest.raises(ValueError, match=r"simulation\.device"):
        cfg.with_overrides(**{"simulation.device": "tpu"})


def test_with_overrides_rejects_unknown_path():
    cfg = load_campaign_config(SMOKE_TOML)
    with pytest.raises(ValueError, match=r"budget\.roundz: no such config field"):
        cfg.with_overrides(**{"budget.roundz": 3})
    with pytest.raises(ValueError, match=r"nothing\.here"):
        cfg.with_overrides(**{"nothing.here": 3})


def test_hall_campaign_config_loads():
    config = load_campaign_config(REPO / "configs" / "hall.toml")
    assert config.scenario.name == "hall" and config.surrogate.closure_form == "multiplicative"
    assert [p.path for p in config.design.parameters] == ["source.x", "source.y", "source.rate"]


@pytest.mark.parametrize("override, needle", [
    ({"planner.strategy": "bayes"}, "planner.strategy"),
    ({"planner.acquisition": "ei"}, "planner.acquisition"),
    ({"budget.max_cases": 2}, "max_cases \\(2\\) is below initial_cases"),
    ({"budget.patience": 0}, "budget.patience"),
    ({"budget.max_error_target": -1.0}, "budget.max_error_target"),
    ({"design.parameters.0.kind": "categorical"}, "choices"),
    ({"design.parameters.0.kind": "integer", "design.parameters.0.low": 1.5}, "whole bounds"),
])
def test_bad_planner_config_names_the_field(config, override, needle):
    with pytest.raises(ValueError, match=needle):
        config.with_overrides(**override)


# ------------------------------------------------------------------------ preflight, once per entry point
def test_preflight_runs_once_per_entry_point_and_not_on_copies(monkeypatch):
    from closedloop.lab import config as module

    calls = []
    real = module.preflight
    monkeypatch.setattr(module, "preflight", lambda c: (calls.append(c), real(c))[1])
    cfg = load_campaign_config(SMOKE_TOML)
    assert calls == [cfg]
    cfg.with_overrides(**{"budget.rounds": 3, "seed": 2})
    assert len(calls) == 1  # a copy parses its sections again, and no more
    got = module.load_with_overrides(SMOKE_TOML, **{"budget.rounds": 3, "planner.strategy": None})
    assert calls[1:] == [got] and got.budget.rounds == 3  # once, on the config that runs


def test_an_override_that_breaks_the_design_is_refused_by_the_entry_point():
    from closedloop.lab.config import load_with_overrides

    outside = {"design.parameters.0.high": 10.5}
    assert load_campaign_config(SMOKE_TOML).with_overrides(**outside).design.parameters[0].high == 10.5
    with pytest.raises(ConfigError) as err:
        load_with_overrides(SMOKE_TOML, **outside)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{SMOKE_TOML} with high=10.5: invalid configuration; ")
    assert "design.parameters.0 (source_x): at its high bound 10.5 the scenario is invalid" in text
