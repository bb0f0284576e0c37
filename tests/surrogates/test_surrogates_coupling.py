"""Time-dependent sources in the surrogate: interval-mean source series, moving sources."""
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


def test_window_folds_into_exact_on_fractions():
    src = torch.ones(1, 2, 2)
    f = Forcing(velocity=(torch.zeros(1, 3, 2), torch.zeros(1, 2, 3)), source=src,
                window=torch.tensor([[15.0, 35.0]]))
    series = f.as_series(5, 10.0).source_series
    assert series is not None and series.shape == (1, 5, 2, 2)
    assert series[0, :, 0, 0].tolist() == [0.0, 0.5, 1.0, 0.5, 0.0]


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


def test_exchange_sink_gives_the_exact_relaxation_mass(room_scenario):
    """dM/dt = R − λM with uniform λ, no flow, source on: M(t) = R(1 − e^{−λt})/λ, to the forward
    Euler error, which shrinks with the substep; λ is ≥ 0, masked and learnable."""
    import dataclasses
    import math

    scen = room_scenario.with_parameters({"time.horizon": 60.0})
    prob = plane_problem(scen)
    lam0 = 0.05
    spec = dataclasses.replace(spec_for(prob, use_closure=False), learn_sink=True, initial_sink=lam0)
    model = HybridSurrogate(spec, prob.mask).double().eval()
    assert model.log_sink.requires_grad and torch.all(model.sink()[~prob.mask] == 0)
    assert torch.allclose(model.sink()[prob.mask], torch.tensor(lam0, dtype=torch.float64))
    still = Forcing(velocity=tuple(torch.zeros_like(u) for u in prob.forcing.velocity),  # type: ignore[arg-type]
                    source=prob.forcing.source, window=prob.forcing.window)
    h2 = prob.spacing[0] * prob.spacing[1]
    rate = prob.forcing.source[0].sum().item() * h2
    with torch.no_grad():
        mass = model.rollout(still, prob.n_steps)[0].sum(dim=(-2, -1)) * h2
    t = torch.tensor(scen.time.output_times(), dtype=torch.float64)
    exact = rate * (1 - torch.exp(-lam0 * t)) / lam0
    k = model.substeps(still)
    rel = ((mass - exact).abs()[1:] / exact[1:]).max().item()
    assert rel < 0.5 * lam0 * 10 / k + 1e-9  # first order in the substep
    assert mass[-1] < rate * 60 * 0.5  # without the sink the plane would hold all R·t
    with pytest.raises(ValueError, match="initial_sink"):
        dataclasses.replace(spec, initial_sink=-1.0)
