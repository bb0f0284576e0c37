"""``[surrogate]``: the learner's defaults, its schedule of stages per round, and bad values refused
by field name before any compute."""
from __future__ import annotations

import dataclasses

import pydantic
import pytest

from closedloop.lab.surrogate_config import SPEC_FIELDS, SurrogateConfig
from closedloop.surrogates.spec import SurrogateSpec


def test_defaults_are_the_learner_and_reach_the_model_spec():
    """The defaults are the measured learner (bench/learning_curve.py): TVD, learned sink, room
    layers, the bounded multiplicative closure, mini-batches of 2, a physics stage before the closure."""
    sc = SurrogateConfig()
    assert (sc.advection, sc.learn_sink, sc.room_layers, sc.closure_form) == ("tvd", True, True, "multiplicative")
    assert (sc.batch_size, sc.learning_rate, sc.closure_gain) == (2, 1e-3, 0.05)
    assert sc.physics_stage_epochs > 0 and sc.warm_start_epochs > 0 and sc.warm_start_optimizer == "fresh"
    options = sc.spec_options()
    assert set(options) == SPEC_FIELDS
    # every option is a field of the model's spec: a field renamed on one side fails here
    assert SPEC_FIELDS - {"vertical_exchange"} <= {f.name for f in dataclasses.fields(SurrogateSpec)}


def test_schedule_stages_round_zero_and_warm_starts_later_rounds():
    sc = SurrogateConfig(epochs=7, physics_stage_epochs=3, physics_stage_learning_rate=0.02, curriculum=[2, 5],
                         warm_start_epochs=2, warm_start_learning_rate=3e-4, batch_size=4, physics_warmup_epochs=1)
    physics, closure = sc.schedule(0, seed=11)
    # the physics stage: physics fields alone for all its epochs, all cases at once, whole horizon, its rate
    assert (physics.epochs, physics.physics_warmup_epochs, physics.batch_size, physics.curriculum) == (3, 3, None, ())
    assert physics.physics_learning_rate == 0.02 and physics.seed == closure.seed == 11
    assert (closure.epochs, closure.batch_size, closure.curriculum, closure.physics_warmup_epochs) == (7, 4, (2, 5), 1)
    assert closure.learning_rate == 1e-3 and closure.physics_learning_rate is None
    (warm,) = sc.schedule(3, seed=14)
    assert (warm.epochs, warm.curriculum, warm.physics_warmup_epochs, warm.batch_size) == (2, (), 0, 4)
    assert warm.learning_rate == warm.physics_learning_rate == 3e-4 and warm.seed == 14
    # no physics stage when 0; the warm start at the closure rate and with the curriculum when asked
    plain = sc.model_copy(update={"physics_stage_epochs": 0, "warm_start_learning_rate": None,
                                  "warm_start_curriculum": True, "physics_learning_rate": 5e-3})
    (only,) = plain.schedule(0, seed=0)
    assert only.epochs == 7
    (warm,) = plain.schedule(1, seed=1)
    assert (warm.learning_rate, warm.physics_learning_rate, warm.curriculum) == (1e-3, 5e-3, (2, 5))


@pytest.mark.parametrize("fields, name", [
    ({"variant": "data_only", "closure_form": "multiplicative"}, "closure_form"),
    ({"variant": "data_only", "use_closure": False}, "variant"),
    ({"warm_start_optimizer": "adam"}, "warm_start_optimizer"),
    ({"warm_start_learning_rate": 0.0}, "warm_start_learning_rate"),
    ({"physics_stage_epochs": -1}, "physics_stage_epochs"),
    ({"closure_gain": float("nan")}, "closure_gain"),
    ({"curriculum": [0, 4]}, "curriculum"),
    ({"warm_start_rate": 1e-3}, "warm_start_rate"),
])
def test_bad_values_are_refused_by_name(fields, name):
    with pytest.raises(pydantic.ValidationError, match=name):
        SurrogateConfig(**fields)


def test_one_default_per_setting_the_learners_choices_apart():
    """A field handed to the model or the trainer defaults to the library's value, except the
    learner's documented choices; TrainConfig has no default for epochs or learning_rate."""
    from closedloop.surrogates.training import TrainConfig

    sc = SurrogateConfig()
    spec_named = {"vertical_exchange": "vertical_outflow"}
    spec_differ = {name for name in SPEC_FIELDS
                   if getattr(sc, name) != getattr(SurrogateSpec, spec_named.get(name, name))}
    assert spec_differ == {"advection", "learn_sink", "room_layers", "closure_form", "closure_gain"}
    train_named = {"warm_start_batches": "max_batches", "warm_start_sample": "sample_scale"}
    shared = {"tbptt_steps", "loss_floor", "weight_decay", "smoothness", "physics_learning_rate",
              "physics_warmup_epochs", "judge_cases", "batch_size", "warm_start_batches", "warm_start_sample"}
    train_differ = {name for name in shared if getattr(sc, name) != getattr(TrainConfig, train_named.get(name, name))}
    assert train_differ == {"batch_size"}
    required = {f.name for f in dataclasses.fields(TrainConfig) if f.default is dataclasses.MISSING}
    assert required == {"epochs", "learning_rate"}
    with pytest.raises(TypeError):
        TrainConfig()  # type: ignore[call-arg]
