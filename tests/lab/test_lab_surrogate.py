"""A surrogate outside a campaign: trained on cases, saved and loaded back, predicting a scenario as a
case; a scenario on another grid or a file that is not a checkpoint is refused by name."""
from __future__ import annotations

import pickle

import pytest
import torch

from closedloop.lab.cases import reference_case
from closedloop.lab.surrogate import load_surrogate, predict_case, save_surrogate, train_surrogate
from closedloop.lab.surrogate_config import SurrogateConfig


@pytest.fixture(scope="module")
def trained(tiny_scenario, tiny_result):
    case = reference_case(tiny_scenario, tiny_result)
    model, report = train_surrogate([case], SurrogateConfig(epochs=2, physics_stage_epochs=1, hidden_channels=2))
    return case, model, report


def test_the_saved_surrogate_predicts_what_it_did(tmp_path, trained, tiny_scenario):
    case, model, report = trained
    path = tmp_path / "m.pt"
    save_surrogate(path, model, [case], report)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["trained_on"] == [case.case_id] and checkpoint["losses"] == report.losses
    again = load_surrogate(path)
    before = predict_case(model, tiny_scenario, "room.toml", "m.pt")
    after = predict_case(again, tiny_scenario, "room.toml", "m.pt")
    assert torch.equal(before.plane, after.plane)


def test_a_prediction_is_a_case_like_the_simulation(trained, tiny_scenario):
    case, model, _ = trained
    pred = predict_case(model, tiny_scenario, "room.toml", "m.pt")
    assert pred.case_id == case.case_id and pred.plane.shape == case.plane.shape
    assert torch.equal(pred.times, case.times.to(torch.float64)) and torch.equal(pred.plane_mask, case.plane_mask)
    assert (pred.provenance["producer"], pred.provenance["model"]) == ("surrogate", "m.pt")


def test_a_scenario_the_model_was_not_trained_for_is_refused_naming_its_file(trained, tiny_scenario):
    model = trained[1]
    lower = tiny_scenario.with_parameters({"plane.z_min": 0.0, "plane.z_max": 0.5})  # the desk cuts the band
    with pytest.raises(ValueError, match=r"^other\.toml: its plane grid/mask differs"):
        predict_case(model, lower, "other.toml", "m.pt")
    wider = tiny_scenario.with_parameters({"room.size.0": 11.0})
    with pytest.raises(ValueError, match=r"^wide\.toml: its plane grid/mask differs"):
        predict_case(model, wider, "wide.toml", "m.pt")
    slower = tiny_scenario.with_parameters({"time.output_interval": 5.0})
    with pytest.raises(ValueError, match=r"^slow\.toml: time\.output_interval 5\.0 differs from the model's 10\.0"):
        predict_case(model, slower, "slow.toml", "m.pt")


class _Arbitrary:  # an object that a weights-only load must refuse
    pass


def test_a_file_that_is_not_a_checkpoint_is_refused_naming_it(tmp_path):
    for name, content in (("junk.pt", None), ("plain.pt", {"w": torch.zeros(1)}), ("evil.pt", _Arbitrary())):
        path = tmp_path / name
        if content is None:
            path.write_bytes(b"not a checkpoint")
        else:
            torch.save(content, path)
        with pytest.raises(ValueError, match=rf"^{path}: not a readable closedloop checkpoint") as info:
            load_surrogate(path)
        if name == "evil.pt":
            assert isinstance(info.value.__cause__, pickle.UnpicklingError)
