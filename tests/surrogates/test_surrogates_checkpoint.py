"""The checkpoint format: a model written and read back predicts bitwise the same; a file that is not a
checkpoint is refused."""
from __future__ import annotations

import io
import pickle

import pytest
import torch

from closedloop.surrogates import HybridSurrogate, SurrogateSpec
from closedloop.surrogates.checkpoint import (NotACheckpoint, checkpoint_payload, load_model, read_checkpoint,
                                              write_checkpoint)
from tests.surrogates.hybrid_builders import build


def _saved(model) -> dict:
    buf = io.BytesIO()
    torch.save({"spec": model.spec.to_dict(), "state_dict": model.state_dict()}, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_checkpoint_round_trip_bitwise(problem, randomiser):
    model = randomiser(build(problem), seed=5)
    ck = _saved(model)
    spec = SurrogateSpec.from_dict(ck["spec"])
    again = HybridSurrogate(spec, ck["state_dict"]["mask"].bool()).double()
    again.load_state_dict(ck["state_dict"])
    again.eval()
    with torch.no_grad():
        a = model.rollout(problem.forcing, problem.n_steps)
        b = again.rollout(problem.forcing, problem.n_steps)
    assert torch.equal(a, b)


def test_campaign_load_model_round_trip_bitwise(problem, randomiser):
    model = randomiser(build(problem), seed=5)
    again = load_model(_saved(model))
    with torch.no_grad():
        a = model.rollout(problem.forcing, problem.n_steps)
        b = again.rollout(problem.forcing, problem.n_steps)
    assert torch.equal(a, b)


def test_payload_written_and_read_back_loads_the_same_model(tmp_path, problem, randomiser):
    model = randomiser(build(problem), seed=6)
    payload = checkpoint_payload(model, trained_on=["a", "b"], round=3)
    assert set(payload) == {"spec", "state_dict", "trained_on", "round"}
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())
    path = tmp_path / "m.pt"
    write_checkpoint(path, payload)
    back = read_checkpoint(path)
    assert (back["trained_on"], back["round"], back["spec"]) == (["a", "b"], 3, model.spec.to_dict())
    again = load_model(back)
    assert not again.training and next(again.parameters()).dtype == torch.float64
    with torch.no_grad():
        assert torch.equal(model.rollout(problem.forcing, problem.n_steps),
                           again.rollout(problem.forcing, problem.n_steps))


def test_a_file_without_a_model_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(NotACheckpoint, match=rf"^{path}: not a closedloop checkpoint \(no spec/state_dict\)"):
        read_checkpoint(path)
    assert read_checkpoint(path, require_model=False) == {"state_dict": {"w": torch.zeros(1)}}
    torch.save([1, 2], path)
    with pytest.raises(NotACheckpoint):
        read_checkpoint(path)
    assert issubclass(NotACheckpoint, ValueError)


class _Arbitrary:  # an object that a weights-only load must refuse
    pass


def test_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"spec": {}, "state_dict": {}, "payload": _Arbitrary()}, path)
    with pytest.raises(pickle.UnpicklingError):
        read_checkpoint(path)
