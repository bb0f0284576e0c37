"""Validate and retrain: damaged cases are never trained on, checkpoints are indexed by checksum, and the
campaign's surrogate and training options reach every round's model."""
from __future__ import annotations

import json

import pytest

from closedloop.lab import campaign as steps
from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import IntegrityError, file_sha256
from tests.lab.case_files import flip_byte
from tests.lab.config_text import altered, smoke_text, write
from tests.lab.conftest import SMOKE_TOML


@pytest.fixture
def config():
    return load_campaign_config(SMOKE_TOML).with_overrides(**{"surrogate.epochs": 1, "surrogate.hidden_channels": 2})


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
    """The paper-table surrogate (bench/paper_table.py) is one config away for a campaign."""
    from closedloop.lab.campaign import initial_model

    text = altered(smoke_text(), "tbptt_steps = 4", "tbptt_steps = 4\nlearn_sink = true\n"
                   'vertical_exchange = true\nclosure_form = "multiplicative"\nphysics_warmup_epochs = 2')
    config = load_campaign_config(write(tmp_path, text))
    model = initial_model(config, [config.scenario])
    spec = model.spec
    assert (spec.learn_sink, spec.vertical_outflow, spec.closure_form) == (True, True, "multiplicative")
    assert spec.initial_sink > 0 and model.log_sink.shape == tuple(spec.shape)
    plain = initial_model(load_campaign_config(write(tmp_path, smoke_text())), [config.scenario])
    assert (plain.spec.learn_sink, plain.spec.vertical_outflow, plain.spec.closure_form) == (False, False, "additive")
    assert not plain.spec.room_layers
    layered = load_campaign_config(write(tmp_path, altered(text, "learn_sink = true", "learn_sink = true\nroom_layers = true")))
    spec = initial_model(layered, [config.scenario]).spec
    assert spec.room_layers and not spec.vertical_outflow and spec.layer_heights[1] > 0
    closure = load_campaign_config(write(tmp_path, altered(text, "learn_sink = true", "learn_sink = true\n"
                                                           "closure_gain = 0.05\nclosure_context = true\n"
                                                           'closure_scale = "mixed"')))
    spec = initial_model(closure, [config.scenario]).spec
    assert (spec.closure_gain, spec.closure_context, spec.closure_scale) == (0.05, True, "mixed")
    assert plain.spec.closure_gain == 1.0 and not plain.spec.closure_context and plain.spec.closure_scale == "peak"


def test_training_options_reach_each_round(tmp_path):
    """Round 0 trains the full schedule with the physics warm-up, later rounds warm-start; the
    mini-batch size and the seed (campaign seed + round) reach the trainer."""
    from closedloop.lab.campaign import round_train_config

    text = altered(smoke_text(), "tbptt_steps = 4", "tbptt_steps = 4\nbatch_size = 3\nphysics_warmup_epochs = 5")
    config = load_campaign_config(write(tmp_path, text))
    first, later = round_train_config(config, 0), round_train_config(config, 2)
    sc = config.surrogate
    assert (first.epochs, first.physics_warmup_epochs, first.batch_size) == (sc.epochs, 5, 3)
    assert (later.epochs, later.physics_warmup_epochs, later.batch_size) == (sc.warm_start_epochs, 0, 3)
    assert later.seed == config.seed + 2
    plain = load_campaign_config(write(tmp_path, smoke_text()))
    assert round_train_config(plain, 0).batch_size is None


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

    store = CampaignStore(tmp_path / "camp")
    scenarios = [tiny_scenario.with_parameters({"source.x": x}) for x in (2.0, 5.0, 8.0)]
    for s in scenarios:  # the same planes under three scenarios: memory does not look at the values
        case = make_case(s, tiny_result)
        sha = write_case(store.case_path(case.case_id), case)
        store.upsert([{"case_id": case.case_id, "round": 0, "status": "done", "strategy": "sobol",
                       "parameters": "{}", "case_sha256": sha}])
    ids = [s.case_id() for s in scenarios]
    batches = []
    real_train = learn.train
    monkeypatch.setattr(learn, "train", lambda model, forcing, target, cfg, **kw: (
        batches.append(cfg.batch_size), real_train(model, forcing, target, cfg, **kw))[1])

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
