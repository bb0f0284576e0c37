"""From a scenario to the plane problem: interval-mean source series (moving sources, batches that mix
them) and the one builder of the model spec."""
from __future__ import annotations

import pytest
import torch

from closedloop.surrogates.coupling import batch_problems, plane_problem, spec_for
from closedloop.surrogates import Forcing, HybridSurrogate


def moving(room_scenario, **extra):
    data = room_scenario.model_dump(mode="json")
    lx, ly, _ = room_scenario.room.size
    z = room_scenario.source.z
    data["source"] = {"trajectory": [{"t": 0.0, "x": 1.0, "y": ly - 1.5, "z": z},
                                     {"t": 30.0, "x": lx - 1.0, "y": ly - 1.5, "z": z}],
                      "rate": 2.0, **extra}
    return type(room_scenario).model_validate(data)


def test_static_source_as_series_reproduces_windowed_rollout(room_scenario, randomiser):
    """Source on from t = 0, never off: the series is the pattern in every interval, so the
    rollouts agree to round-off, closure included."""
    windowed = plane_problem(room_scenario)
    timed = plane_problem(room_scenario, time_series=True)
    assert timed.forcing.source_series is not None
    model = randomiser(HybridSurrogate(spec_for(windowed, hidden_channels=4), windowed.mask).double()).eval()
    with torch.no_grad():
        a = model.rollout(windowed.forcing, windowed.n_steps)
        b = model.rollout(timed.forcing, timed.n_steps)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-14 * a.abs().max().item())


def test_moving_source_series_carries_exact_mass_and_follows_the_path(room_scenario):
    scen = moving(room_scenario, stop=25.0)
    prob = plane_problem(scen)
    series = prob.forcing.source_series
    assert series is not None and series.shape == (1, prob.n_steps, *prob.mask.shape)
    h2 = prob.spacing[0] * prob.spacing[1]
    static = plane_problem(room_scenario)  # same source size and height: same band share of the rate
    band_rate = static.forcing.source[0].sum().item() * h2 / room_scenario.source.rate * scen.source.rate
    per_interval = series[0].sum(dim=(-2, -1)) * h2
    # on for 10, 10 and 5 s of the three intervals
    assert torch.allclose(per_interval, torch.tensor([1.0, 1.0, 0.5], dtype=per_interval.dtype) * band_rate,
                          rtol=1e-12)
    # the pattern moves with the walker: the x-centroid increases interval by interval
    xs = (torch.arange(prob.mask.shape[0], dtype=series.dtype) + 0.5) * prob.spacing[0]
    cx = [(series[0, n].sum(dim=1) * xs).sum() / series[0, n].sum() for n in range(2)]
    assert cx[1] > cx[0] + 2 * prob.spacing[0]
    # and the physics-only model puts exactly that mass on the plane when nothing moves it
    model = HybridSurrogate(spec_for(prob, use_closure=False), prob.mask).double().eval()
    still = Forcing(velocity=tuple(torch.zeros_like(u) for u in prob.forcing.velocity),  # type: ignore[arg-type]
                    source=prob.forcing.source, window=prob.forcing.window, source_series=series)
    with torch.no_grad():
        pred = model.rollout(still, prob.n_steps)
    mass = pred[0].sum(dim=(-2, -1)) * h2
    expected = torch.cumsum(torch.cat([torch.zeros(1, dtype=per_interval.dtype), per_interval]), 0) \
        * scen.time.output_interval
    assert torch.allclose(mass, expected, rtol=1e-12, atol=1e-14)


def test_a_batch_with_one_moving_source_turns_every_case_into_a_series(room_scenario):
    forcing, prob = batch_problems([room_scenario, moving(room_scenario)])
    assert forcing.source_series is not None and forcing.source_series.shape[:2] == (2, prob.n_steps)
    with pytest.raises(ValueError, match="source_series"):
        Forcing.stack([plane_problem(room_scenario).forcing, plane_problem(moving(room_scenario)).forcing])


def test_spec_for_takes_the_grid_from_the_problem_and_passes_options_through(problem):
    spec = spec_for(problem, hidden_channels=3, use_closure=False, closure="encoder_lstm", advection="tvd",
                    closure_gain=0.5)
    assert (spec.shape, spec.spacing) == (tuple(problem.mask.shape), problem.spacing)
    assert (spec.output_interval, spec.initial_diffusivity) == (problem.output_interval, problem.eddy_diffusivity)
    assert (spec.hidden_channels, spec.use_closure, spec.closure, spec.advection, spec.closure_gain) == (
        3, False, "encoder_lstm", "tvd", 0.5)
    sink = spec_for(problem, learn_sink=True, vertical_exchange=True)
    assert (sink.learn_sink, sink.initial_sink, sink.vertical_outflow) == (True, problem.air_exchange_rate, True)
    assert spec_for(problem).initial_sink == 0.0 and not spec_for(problem).vertical_outflow


@pytest.mark.parametrize("field", ["shape", "spacing", "output_interval", "initial_diffusivity", "initial_sink",
                                   "vertical_outflow", "layer_heights"])
def test_a_derived_field_given_as_an_option_is_refused_naming_it(problem, field):
    with pytest.raises(ValueError, match=rf"^spec_for: \['{field}'\] are derived from the problem"):
        spec_for(problem, **{field: getattr(spec_for(problem), field)})


def test_room_layers_need_a_problem_built_with_layers(room_scenario):
    flat = plane_problem(room_scenario, layers=False)
    assert flat.layer_heights is None
    with pytest.raises(ValueError, match="^room_layers: the problem has no room layers"):
        spec_for(flat, room_layers=True)
    layered = spec_for(plane_problem(room_scenario, layers=True), room_layers=True, learn_sink=True)
    assert layered.room_layers and layered.initial_sink == 0.0 and all(h > 0 for h in layered.layer_heights)
