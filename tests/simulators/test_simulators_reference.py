"""The 3D reference solver: mass budget, positivity, plane reduction, source timing, physics trends."""
from __future__ import annotations

import math

import pytest
import torch

from closedloop.simulators import Scenario, simulate
from sim_test_scenarios import cluttered, room, room_data

SHORT = {"horizon": 60.0, "output_interval": 10.0}
PILLAR_COLUMNS = {(9, 5), (9, 6), (10, 5), (10, 6)}  # x ∈ [4.5, 5.5], y ∈ [2.5, 3.5], full height


@pytest.fixture(scope="module")
def room_run():
    return simulate(room(), device="cpu")


@pytest.fixture(scope="module")
def windowed_run():
    """The cluttered room, a source on over [7.3, 33.1) s, off-grid w.r.t. outputs and steps."""
    data = {"time": SHORT, "source": {"x": 2.5, "y": 4.75, "z": 1.25, "rate": 2.5,
                                      "start": 7.3, "stop": 33.1}}
    return simulate(cluttered(**data), device="cpu")


def _budget_error(res) -> float:
    gap = res.mass_emitted - res.mass_in_domain - res.mass_exhausted
    return gap.abs().max().item() / res.mass_emitted.abs().max().item()


def test_result_layout(room_run):
    res = room_run
    scen = room()
    assert torch.equal(res.times, torch.tensor(scen.time.output_times(), dtype=torch.float64))
    assert res.times[0] == 0 and res.times[-1] == 120.0 and len(res.times) == 13
    assert res.plane.shape == (13, 20, 12) and res.plane_mask.shape == (20, 12)
    assert set(res.probes) == {"desk", "exhaust"} and all(p.shape == (13,) for p in res.probes.values())
    assert res.dtype == "float64" and res.plane.dtype == torch.float64 and res.device == "cpu"
    assert res.steps >= math.ceil(120.0 / res.dt)  # never a step above the stable one


@pytest.mark.parametrize("which", ["room", "windowed"])
def test_mass_budget_closes_at_every_output(which, room_run, windowed_run):
    res = room_run if which == "room" else windowed_run
    assert res.mass_emitted[-1] > 0
    err = _budget_error(res)
    assert err < 1e-10, err
    # and each side is substantial: the exhaust carries a real share by the end
    assert res.mass_exhausted[-1] > 1e-4 * res.mass_emitted[-1]
    assert torch.all(res.mass_in_domain >= 0)
    assert torch.all(res.mass_exhausted.diff() >= -1e-12 * res.mass_emitted[-1])  # no mass sucked back in


def test_continuous_source_emits_rate_times_time(room_run):
    expected = 1.0 * room_run.times  # rate 1 mg/s from t = 0
    assert torch.allclose(room_run.mass_emitted, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("which", ["room", "windowed"])
def test_non_negative_and_zero_in_solid_columns(which, room_run, windowed_run):
    res = room_run if which == "room" else windowed_run
    assert res.plane.min().item() >= 0.0
    assert res.plane.max().item() > 0.0
    assert all(p.min().item() >= 0.0 for p in res.probes.values())
    assert torch.all(res.plane[:, ~res.plane_mask] == 0)
    if which == "room":
        # the band [1, 2] m: only the full-height pillar blocks whole columns (the desk is 1 m tall)
        solid_cols = {tuple(ix) for ix in (~res.plane_mask).nonzero().tolist()}
        assert solid_cols == PILLAR_COLUMNS


def test_source_window_emits_exactly_rate_times_duration(windowed_run):
    res = windowed_run
    start, stop, rate = 7.3, 33.1, 2.5
    expected = rate * (res.times.clamp(min=start, max=stop) - start)
    assert torch.allclose(res.mass_emitted, expected, rtol=1e-12, atol=1e-12)
    assert res.mass_emitted[-1].item() == pytest.approx(rate * (stop - start), rel=1e-12)
    # before the source switches on, nothing at all has happened
    before = res.times < start
    assert before.sum() == 1 and torch.all(res.plane[before] == 0) and res.mass_in_domain[0] == 0
    # after it stops the room only loses mass through the exhausts
    after = (res.times >= stop).nonzero().squeeze(1)
    assert len(after) >= 3
    m = res.mass_in_domain[after]
    assert torch.all(m.diff() < 0)


def _plane_centroid(res, t: int = -1) -> tuple[float, float]:
    p = res.plane[t]
    nx, ny = p.shape
    x = (torch.arange(nx, dtype=torch.float64) + 0.5) * 0.5
    y = (torch.arange(ny, dtype=torch.float64) + 0.5) * 0.5
    w = p.sum()
    return ((p.sum(1) * x).sum() / w).item(), ((p.sum(0) * y).sum() / w).item()


def _peak_location(res, t: int = -1) -> tuple[int, int]:
    p = res.plane[t]
    idx = int(p.argmax())
    return divmod(idx, p.shape[1])


@pytest.mark.parametrize("y, side", [(0.75, "low"), (5.25, "high")])
def test_source_near_a_wall_puts_plane_centroid_on_that_side(y, side):
    res = simulate(room(time=SHORT, source={"x": 2.5, "y": y, "z": 1.5, "rate": 1.0}), device="cpu")
    _, cy = _plane_centroid(res)
    _, jpk = _peak_location(res)
    half = 3.0
    if side == "low":
        assert cy < half - 0.5 and jpk < 6
    else:
        assert cy > half + 0.5 and jpk >= 6


def test_float32_agrees_with_float64():
    scen = room(time=SHORT)
    r64 = simulate(scen, device="cpu", dtype=torch.float64)
    r32 = simulate(scen, device="cpu", dtype=torch.float32)
    assert r32.plane.dtype == torch.float32 and r32.dtype == "float32"
    rel = ((r32.plane.double() - r64.plane).abs().max() / r64.plane.abs().max()).item()
    assert rel < 1e-4, rel
    assert _budget_error(r32) < 1e-4


def test_doubling_eddy_diffusivity_spreads_the_plume():
    base = room(time=SHORT)
    r1 = simulate(base, device="cpu")
    r2 = simulate(base.with_parameters({"eddy_diffusivity": 2 * base.eddy_diffusivity}), device="cpu")
    peak1 = r1.plane[1:].amax(dim=(1, 2))
    peak2 = r2.plane[1:].amax(dim=(1, 2))
    assert torch.all(peak2 < 0.9 * peak1), (peak1, peak2)

    def spread(res):
        p = res.plane[-1]
        nx, ny = p.shape
        x = ((torch.arange(nx, dtype=torch.float64) + 0.5) * 0.5)[:, None]
        y = ((torch.arange(ny, dtype=torch.float64) + 0.5) * 0.5)[None, :]
        cx, cy = _plane_centroid(res)
        return ((p * ((x - cx) ** 2 + (y - cy) ** 2)).sum() / p.sum()).item()

    assert spread(r2) > spread(r1)


@pytest.mark.parametrize("band, weights", [((1.0, 2.0), (0.5, 0.5)), ((1.2, 1.9), (0.3, 0.4))])
def test_plane_is_the_band_mean_of_the_layers(band, weights):
    """Probes at the two layer centres of one column reproduce the plane value there."""
    x, y = 2.25, 3.75  # cell (4, 7)
    probes = [{"name": "lo", "position": [x, y, 1.25]}, {"name": "hi", "position": [x, y, 1.75]}]
    res = simulate(room(time={"horizon": 30.0, "output_interval": 10.0}, probes=probes,
                        plane={"z_min": band[0], "z_max": band[1]}), device="cpu")
    w_lo, w_hi = weights
    expected = (w_lo * res.probes["lo"] + w_hi * res.probes["hi"]) / (w_lo + w_hi)
    assert res.probes["lo"][-1] > 0 and not torch.allclose(res.probes["lo"], res.probes["hi"])
    assert torch.allclose(res.plane[:, 4, 7], expected, rtol=1e-12, atol=1e-15)


def test_plane_band_ignores_solid_layers():
    """Over the desk (solid up to 1 m) the band [0.5, 1.5] averages the fluid layer only."""
    x, y = 7.25, 0.75  # cell (14, 1), under which the desk fills layers 0 and 1
    probes = [{"name": "above", "position": [x, y, 1.25]}]
    res = simulate(room(time={"horizon": 30.0, "output_interval": 10.0}, probes=probes,
                        source={"x": 6.25, "y": 1.25, "z": 1.25, "rate": 1.0},
                        plane={"z_min": 0.5, "z_max": 1.5}), device="cpu")
    assert res.probes["above"][-1] > 0
    assert torch.allclose(res.plane[:, 14, 1], res.probes["above"], rtol=1e-12, atol=1e-15)


def test_probe_inside_an_obstacle_is_rejected():
    data = room_data()
    data["probes"].append({"name": "inside", "position": [5.0, 3.0, 1.5]})  # in the pillar
    scen = Scenario.model_validate(data)  # positions inside the room pass validation...
    with pytest.raises(ValueError, match=r"probes\.2 \(inside\)"):  # ...but not the simulator
        simulate(scen, device="cpu")


def test_progress_callback_and_safety_argument():
    seen = []
    scen = room(time={"horizon": 30.0, "output_interval": 10.0})
    res = simulate(scen, device="cpu", progress=lambda t, end: seen.append((t, end)))
    assert seen == [(10.0, 30.0), (20.0, 30.0), (30.0, 30.0)]
    half = simulate(scen, device="cpu", safety=0.45)
    assert half.dt == pytest.approx(res.dt / 2, rel=1e-12) and half.steps >= 2 * res.steps - 3
    with pytest.raises(ValueError, match="safety"):
        simulate(scen, device="cpu", safety=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    scen = room(time={"horizon": 30.0, "output_interval": 10.0})
    cpu = simulate(scen, device="cpu")
    gpu = simulate(scen, device="cuda")
    assert gpu.device.startswith("cuda")
    assert torch.allclose(gpu.plane, cpu.plane, rtol=1e-10, atol=1e-12)
