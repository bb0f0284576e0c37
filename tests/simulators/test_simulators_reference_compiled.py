"""The reference solver's fused, compiled time step (``simulate(compile=True)``) against the eager one.

Same scheme, so the same plane series and probes up to round-off, the mass budget closing to 1e-10,
positivity, and the compilation time reported apart from the transport wall time.
"""
from __future__ import annotations

import pytest
import torch

from closedloop.simulators import simulate
from closedloop.simulators.reference import COMPILE_MIN_CELL_STEPS, compile_by_default
from sim_test_scenarios import cluttered

SHORT = {"horizon": 30.0, "output_interval": 10.0}


@pytest.fixture(scope="module")
def runs():
    # a moving source switched on mid-run: source terms at both stage times and the on/off switch
    data = {"time": SHORT, "source": {"rate": 2.5, "start": 3.3, "stop": 21.1,
                                      "trajectory": [{"t": 0.0, "x": 2.5, "y": 4.75, "z": 1.25},
                                                     {"t": 30.0, "x": 7.5, "y": 3.0, "z": 1.75}]}}
    sc = cluttered(**data)
    assert sc.source.is_moving
    return simulate(sc, device="cpu", compile=False), simulate(sc, device="cpu", compile=True)


def test_compiled_step_matches_eager(runs) -> None:
    eager, fused = runs
    assert not eager.extra["compiled"]
    if not fused.extra["compiled"]:
        pytest.skip(f"torch.compile unavailable here: {fused.extra['compile_fallback']}")
    assert fused.extra["compile_seconds"] > 0
    scale = eager.plane.abs().max().item()
    assert scale > 0
    assert (fused.plane - eager.plane).abs().max().item() <= 1e-12 * scale
    for name, series in eager.probes.items():
        assert torch.allclose(fused.probes[name], series, rtol=1e-10, atol=1e-14 * scale)
    assert fused.steps == eager.steps


def test_compiled_run_keeps_budget_and_positivity(runs) -> None:
    _, fused = runs
    gap = (fused.mass_emitted - fused.mass_in_domain - fused.mass_exhausted).abs().max().item()
    assert gap <= 1e-10 * fused.mass_emitted[-1].item()
    assert fused.plane.min().item() >= -1e-14 * fused.plane.abs().max().item()
    assert fused.mass_exhausted[-1].item() > 0


def test_a_run_compiles_by_default_only_when_large_enough_to_pay(monkeypatch) -> None:
    monkeypatch.delenv("CLOSEDLOOP_COMPILE", raising=False)
    hall, room = (12_740, 4_920), (1_440, 336)
    assert compile_by_default(*hall) and not compile_by_default(*room)
    assert compile_by_default(*room, compile=True) and not compile_by_default(*hall, compile=False)
    edge = int(COMPILE_MIN_CELL_STEPS)
    assert compile_by_default(edge, 1) and not compile_by_default(edge - 1, 1)
    # the cost counts evaluations: 4 stages a step weigh twice Heun's 2
    assert compile_by_default(12_740, 1_000, stages=4) and not compile_by_default(12_740, 1_000, stages=2)
    assert compile_by_default(edge // 2, 1, stages=4) and not compile_by_default(edge, 1, stages=1)
    monkeypatch.setenv("CLOSEDLOOP_COMPILE", "off")
    assert not compile_by_default(*hall) and compile_by_default(*hall, compile=True)
    monkeypatch.setenv("CLOSEDLOOP_COMPILE", "1")
    assert compile_by_default(*room) and not compile_by_default(*room, compile=False)


def test_a_small_run_stays_eager_by_default(monkeypatch) -> None:
    monkeypatch.delenv("CLOSEDLOOP_COMPILE", raising=False)
    result = simulate(cluttered(time=SHORT), device="cpu")
    assert not result.extra["compiled"] and result.extra["compile_fallback"] is None
    assert result.extra["compile_seconds"] == 0.0
