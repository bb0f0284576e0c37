"""Validate and retrain: damaged cases are never trained on, checkpoints are indexed by checksum, and the
campaign's surrogate and training options reach every round's model."""
from __future__ import annotations

import json

import pytest
import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import IntegrityError, file_sha256
from tests.lab.case_files import flip_byte
from tests.lab.config_text import altered, smoke_text, write
from tests.lab.conftest import SMOKE_TOML
from tests.lab.planner_ledgers import ledger_of, validated


@pytest.fixture
def config():
    return load_campaign_config(SMOKE_TOML).with_overrides(**{"surrogate.epochs": 1, "surrogate.hidden_channels": 2,
                                                              "surrogate.physics_stage_epochs": 0})


def test_a_training_takes_validated_cases_only_up_to_its_round(config):
    rows = validated(config, 6)
    rows[2] = (1, "done", rows[2][2], 0.1)
    rows[3] = (1, "proposed", rows[3][2], None)
    rows[4] = (1, "done", rows[4][2], None)  # finished, not yet predicted: never trained on
    rows[5] = (2, "failed", rows[5][2], None)
    ledger = ledger_of(config, rows)
    ids = ledger["case_id"].tolist()
    assert steps.training_set(ledger) == [ids[0], ids[1], ids[2]]  # both modes: every validated case
    assert steps.training_set(ledger, 0) == [ids[0], ids[1]]  # a sync round: rounds up to it


def test_damaged_case_is_refused_by_validation_and_training(config, store_with_case):
    store, cid, sha = store_with_case
    flip_byte(store.case_path(cid))
    with pytest.raises(IntegrityError, match=rf"{cid}.parquet: checksum mismatch: recorded sha256 {sha[:16]}"):
        steps.validate_round(config, store, 0, [cid])
    with pytest.raises(IntegrityError, match="damaged after it was written"):
        steps.retrain_round(config, store, 0, [cid])
    assert list(store.models_dir.iterdir()) == []  # nothing was trained on it


def test_checkpoint_checksum_is_indexed_and_checked(store_with_case, config):
    store, cid, _ = store_with_case
    steps.retrain_round(config, store, 0, [cid])
    name = steps.model_name(0)
    index = json.loads(store.model_index_path.read_text())
    assert index[name]["sha256"] == file_sha256(store.model_path(name)) and steps.round_complete(store, 0)
    flip_byte(store.model_path(name), offset=store.model_path(name).stat().st_size - 40)
    with pytest.raises(IntegrityError, match=r"round_000.pt: checksum mismatch"):
        store.load_checkpoint(name)


def test_band_physics_options_reach_the_model(tmp_path):
    """The learner's model is the default; each option of it is one config line away from off."""
    from closedloop.lab.campaign import initial_model

    config = load_campaign_config(write(tmp_path, smoke_text()))
    spec = initial_model(config, [config.scenario]).spec
    assert (spec.learn_sink, spec.room_layers, spec.closure_form, spec.closure_gain, spec.advection) == \
        (True, True, "multiplicative", 0.05, "tvd")
    assert spec.layer_heights[1] > 0 and not spec.vertical_outflow
    plain_text = altered(smoke_text(), "tbptt_steps = 4", 'tbptt_steps = 4\nlearn_sink = false\nroom_layers = false\n'
                         'closure_form = "additive"\nclosure_gain = 1.0\nadvection = "upwind"')
    plain = initial_model(load_campaign_config(write(tmp_path, plain_text)), [config.scenario])
    assert (plain.spec.learn_sink, plain.spec.vertical_outflow, plain.spec.closure_form) == (False, False, "additive")
    assert not plain.spec.room_layers and plain.spec.closure_gain == 1.0 and plain.spec.advection == "upwind"
    sink = load_campaign_config(write(tmp_path, altered(plain_text, "learn_sink = false", "learn_sink = true\n"
                                                        "vertical_exchange = true")))
    model = initial_model(sink, [config.scenario])
    assert model.spec.vertical_outflow and model.spec.initial_sink > 0 and model.log_sink.shape == tuple(model.spec.shape)
    closure = load_campaign_config(write(tmp_path, altered(smoke_text(), "tbptt_steps = 4", "tbptt_steps = 4\n"
                                                           "closure_context = true\n" 'closure_scale = "mixed"')))
    spec = initial_model(closure, [config.scenario]).spec
    assert (spec.closure_context, spec.closure_scale) == (True, "mixed")
    assert not plain.spec.closure_context and plain.spec.closure_scale == "peak"


def test_training_options_reach_each_round(tmp_path):
    """Round 0 is the staged fit (the physics stage: closure frozen, all cases at once, its own rate;
    then the closure stage with the physics warm-up and the curriculum); later rounds are one warm
    start at the warm-start rate over the whole horizon. The seed is the campaign seed + round."""
    from closedloop.lab.campaign import round_schedule

    text = altered(smoke_text(), "tbptt_steps = 4", "tbptt_steps = 4\nbatch_size = 3\nphysics_warmup_epochs = 5\n"
                   "curriculum = [2, 4]\nphysics_stage_learning_rate = 0.02\nwarm_start_learning_rate = 3e-4")
    config = load_campaign_config(write(tmp_path, text))
    sc = config.surrogate
    physics, closure = round_schedule(config, 0)
    assert (physics.epochs, physics.physics_warmup_epochs, physics.batch_size) == (sc.physics_stage_epochs,) * 2 + (None,)
    assert (physics.physics_learning_rate, physics.curriculum) == (0.02, ())
    assert (closure.epochs, closure.physics_warmup_epochs, closure.batch_size, closure.curriculum) == \
        (sc.epochs, 5, 3, (2, 4))
    assert closure.learning_rate == sc.learning_rate and closure.physics_learning_rate is None
    (later,) = round_schedule(config, 2)
    assert (later.epochs, later.physics_warmup_epochs, later.batch_size, later.curriculum) == \
        (sc.warm_start_epochs, 0, 3, ())
    assert later.learning_rate == later.physics_learning_rate == 3e-4
    assert later.seed == config.seed + 2 and physics.seed == closure.seed == config.seed
    again = config.with_overrides(**{"surrogate.warm_start_curriculum": True, "surrogate.physics_stage_epochs": 0,
                                     "surrogate.warm_start_learning_rate": None})
    assert len(round_schedule(again, 0)) == 1 and round_schedule(again, 1)[0].curriculum == (2, 4)
    assert round_schedule(again, 1)[0].learning_rate == sc.learning_rate
    assert (later.max_batches, later.judge_cases) == (None, None)
    capped = config.with_overrides(**{"surrogate.warm_start_batches": 3, "surrogate.judge_cases": 4})
    assert [(s.max_batches, s.judge_cases) for s in round_schedule(capped, 0)] == [(None, 4), (None, 4)]
    assert [(s.max_batches, s.judge_cases) for s in round_schedule(capped, 1)] == [(3, 4)]
    assert capped.config_hash() != config.config_hash()  # they change what is trained
    sampled = config.with_overrides(**{"surrogate.warm_start_sample": 3.0, "surrogate.judge_cases": 4})
    assert [(s.sample_scale, s.judge_cases) for s in round_schedule(sampled, 0)] == [(None, 4), (None, 4)]
    assert [(s.sample_scale, s.max_batches, s.judge_cases) for s in round_schedule(sampled, 1)] == [(3.0, None, 4)]
    assert sampled.config_hash() != config.with_overrides(**{"surrogate.judge_cases": 4}).config_hash()
    with pytest.raises(ValueError, match="warm_start_sample: sets a warm start's cases itself"):
        config.with_overrides(**{"surrogate.warm_start_sample": 3.0, "surrogate.warm_start_batches": 2})
    assert config.with_overrides(**{"surrogate.compile": False}).config_hash() == config.config_hash()


def test_the_physics_substep_is_fused_as_the_config_and_the_environment_say(monkeypatch, tmp_path):
    """surrogate.compile (default on) fuses the layered substep, for training too; $CLOSEDLOOP_COMPILE,
    when set, decides for the process (the suite sets it off)."""
    from types import SimpleNamespace

    from closedloop.lab.campaign.learn import fused

    class Model:  # records what fused() asks of HybridSurrogate.compile_physics
        def __init__(self, layers: bool):
            self.spec, self.calls = SimpleNamespace(room_layers=layers), []

        def compile_physics(self, enabled, *, training=False):
            self.calls.append((enabled, training))

    config = load_campaign_config(write(tmp_path, smoke_text()))
    assert config.surrogate.compile is True
    monkeypatch.delenv("CLOSEDLOOP_COMPILE", raising=False)
    assert fused(config, Model(True), training=True).calls == [(True, True)]
    assert fused(config, Model(True)).calls == [(True, False)]
    assert fused(config, Model(False)).calls == []  # only the layered substep has a fused kernel
    off = config.with_overrides(**{"surrogate.compile": False})
    assert fused(off, Model(True)).calls == []
    monkeypatch.setenv("CLOSEDLOOP_COMPILE", "1")
    assert fused(off, Model(True)).calls == [(True, False)]
    monkeypatch.setenv("CLOSEDLOOP_COMPILE", "off")
    assert fused(config, Model(True), training=True).calls == []


def test_checkpoint_carries_the_training_summary_and_status_reads_it(config, store_with_case):
    """Each round's checkpoint says how its training went; training_history reads it back with the
    warnings of a round that did not learn; a kept optimizer state travels to the next round."""
    store, cid, _ = store_with_case
    config = config.with_overrides(**{"surrogate.physics_stage_epochs": 1, "surrogate.warm_start_epochs": 1,
                                      "surrogate.warm_start_optimizer": "kept"})
    report = steps.retrain_round(config, store, 0, [cid])
    checkpoint = store.load_checkpoint(steps.model_name(0))
    assert checkpoint["training"] == {**report.summary(), "torch_threads": torch.get_num_threads(), "device": "cpu"}
    assert checkpoint["training"]["stages"] == [1, 1]
    assert checkpoint["optimizer_state"]["state"]
    later = steps.retrain_round(config, store, 1, [cid])
    steps_before = max(float(s["step"]) for s in checkpoint["optimizer_state"]["state"].values())
    steps_after = max(float(s["step"]) for s in later.optimizer_state["state"].values())
    assert steps_after > steps_before
    history = steps.training_history(store, 3)
    assert [h["round"] for h in history] == [0, 1] and history[0]["cases"] == 1
    assert history[1]["initial_loss"] == pytest.approx(later.initial_loss)
    assert all(h["warnings"] == [] or h["kept_start"] or h["peak_over_start"] > 10 for h in history)


def test_training_takes_the_mini_batch_its_memory_budget_affords(config, tiny_scenario, tiny_result, tmp_path,
                                                                 monkeypatch):
    """Without surrogate.batch_size, a round trains in the fewest equal mini-batches that fit
    surrogate.training_memory_gb: all 3 cases at once by default, 2 + 1 when 2 fit; a budget not even
    one case fits is refused naming the field, before anything is trained or written."""
    import closedloop.lab.campaign.learn as learn
    from closedloop.lab.store import CampaignStore, write_case
    from closedloop.surrogates.coupling import batch_problems
    from closedloop.surrogates.memory import TrainingTooLarge, estimate_training, training_memory
    from tests.lab.case_files import make_case

    config = config.with_overrides(**{"surrogate.batch_size": None})
    store = CampaignStore(tmp_path / "camp")
    scenarios = [tiny_scenario.with_parameters({"source.x": x}) for x in (2.0, 5.0, 8.0)]
    for s in scenarios:  # the same planes under three scenarios: memory does not look at the values
        case = make_case(s, tiny_result)
        sha = write_case(store.case_path(case.case_id), case)
        store.upsert([{"case_id": case.case_id, "round": 0, "status": "done", "strategy": "sobol",
                       "parameters": "{}", "case_sha256": sha}])
    ids = [s.case_id() for s in scenarios]
    batches = []
    real_train = learn.train_stages
    monkeypatch.setattr(learn, "train_stages", lambda model, forcing, target, stages, **kw: (
        batches.append(stages[-1].batch_size), real_train(model, forcing, target, stages, **kw))[1])

    steps.retrain_round(config, store, 0, ids)
    forcing, problem = batch_problems(scenarios)
    one = estimate_training(steps.initial_model(config, scenarios), forcing, problem.n_steps,
                            config.surrogate.tbptt_steps, 1)
    two_fit = training_memory(2, one.segment, one.graph_bytes) / 2 ** 30
    steps.retrain_round(config.with_overrides(**{"surrogate.training_memory_gb": two_fit}), store, 0, ids)
    assert batches == [3, 2]

    store.model_path(steps.model_name(0)).unlink()
    with pytest.raises(TrainingTooLarge, match=r"^surrogate.training_memory_gb: 1 cases at once .* over the "
                                               r"training budget of 0.05 GiB \(surrogate.training_memory_gb\)"):
        steps.retrain_round(config.with_overrides(**{"surrogate.training_memory_gb": 0.05}), store, 0, ids)
    assert batches == [3, 2] and not store.model_path(steps.model_name(0)).exists()


def test_a_warm_start_knows_its_new_cases(config, tiny_scenario, tiny_result, tmp_path, monkeypatch):
    """Round 1 hands the trainer the cases round 0's model was not trained on (the ones a sampled warm
    epoch always visits); round 0 calls every case new."""
    import closedloop.lab.campaign.learn as learn
    from closedloop.lab.store import CampaignStore, write_case
    from tests.lab.case_files import make_case

    store = CampaignStore(tmp_path / "camp")
    scenarios = [tiny_scenario.with_parameters({"source.x": x}) for x in (2.0, 5.0, 8.0)]
    for r, s in zip((0, 1, 0), scenarios):
        case = make_case(s, tiny_result)
        store.upsert([{"case_id": case.case_id, "round": r, "status": "done", "strategy": "sobol",
                       "parameters": "{}", "case_sha256": write_case(store.case_path(case.case_id), case)}])
    ids = [s.case_id() for s in scenarios]
    seen = []
    real_train = learn.train_stages
    monkeypatch.setattr(learn, "train_stages", lambda model, forcing, target, stages, **kw: (
        seen.append(kw["new_cases"]), real_train(model, forcing, target, stages, **kw))[1])
    config = config.with_overrides(**{"surrogate.warm_start_epochs": 1, "surrogate.warm_start_sample": 0.5})
    steps.retrain_round(config, store, 0, [ids[0], ids[2]])
    steps.retrain_round(config, store, 1, ids)
    assert seen == [[0, 1], [1]]
    assert store.load_checkpoint(steps.model_name(1))["trained_on"] == ids
