"""physics.steppers: order of accuracy on dc/dt = −c, the auxiliary quantity integrated by the same
stages (a budget closing to round-off), stage forcings at the stages' times, and the autonomous wrappers."""
from __future__ import annotations

import math

import pytest
import torch

from closedloop.physics.steppers import (STEPPERS, Stepper, euler_step, forward_euler, heun, make_stepper, ssp_rk2_stages,
                                        ssp_rk2_step)

F64 = torch.float64


def _decay(c: torch.Tensor, _forcing: object) -> tuple[torch.Tensor, torch.Tensor]:
    """dc/dt = −c, and q collects what leaves: dq/dt = Σc (so Σc + q is constant)."""
    return -c, c.sum()


SCHEMES = {"euler": make_stepper("euler"), "ssp_rk2": make_stepper("ssp_rk2"), "ssp_rk2_s3": make_stepper("ssp_rk2", 3),
           "ssp_rk2_s4": make_stepper("ssp_rk2", 4), "ssp_rk2_s10": make_stepper("ssp_rk2", 10)}


def _run(name: str, c: torch.Tensor, T: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    stepper = SCHEMES[name]
    q = torch.zeros((), dtype=F64)
    for _ in range(n):
        c, dq = stepper.step(_decay, c, T / n, (None,) * len(stepper.stage_times))
        q = q + dq
    return c, q


@pytest.mark.parametrize("name, order", [("euler", 1), ("ssp_rk2", 2), ("ssp_rk2_s3", 2), ("ssp_rk2_s4", 2),
                                         ("ssp_rk2_s10", 2)])
def test_order_of_accuracy_on_exponential_decay(name: str, order: int) -> None:
    c0, T = torch.tensor([1.0, 0.5], dtype=F64), 1.0
    errors = [(_run(name, c0, T, n)[0] - c0 * math.exp(-T)).abs().max().item() for n in (20, 40, 80, 160)]
    rates = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(r - order) < 0.05 for r in rates), (errors, rates)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_auxiliary_quantity_closes_the_budget_to_round_off(name: str) -> None:
    c0 = torch.rand(5, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    c, q = _run(name, c0, 3.0, 37)
    assert c.sum().item() < 0.2 * c0.sum().item()  # most of it left
    assert abs((c.sum() + q - c0.sum()).item()) <= 1e-14 * c0.sum().item()


def test_stage_forcings_are_read_at_the_stage_times() -> None:
    """dc/dt = s(t) with s(t) = t: SSP-RK2 (s₀ at t, s₁ at t + Δt) is the trapezoid rule, exact for a
    linear s; Euler (s₀ at t) is the left Riemann sum."""
    T, n = 2.0, 8
    dt = T / n
    for name, expected in (("ssp_rk2", T**2 / 2), ("ssp_rk2_s4", T**2 / 2), ("ssp_rk2_s10", T**2 / 2),
                           ("euler", dt * sum(k * dt for k in range(n)))):
        stepper = SCHEMES[name]
        c = torch.zeros((), dtype=F64)
        for k in range(n):
            t = k * dt
            forcings = tuple(torch.tensor(t + ci * dt, dtype=F64) for ci in stepper.stage_times)
            c, _ = stepper.step(lambda y, s: (s, 0.0), c, dt, forcings)
        assert c.item() == pytest.approx(expected, rel=1e-14), name


def test_autonomous_wrappers_are_the_steppers() -> None:
    c = torch.rand(6, generator=torch.Generator().manual_seed(1), dtype=F64)
    rate = lambda y: -2.0 * y + y.roll(1)  # noqa: E731
    assert torch.equal(forward_euler(rate, c, 0.1), euler_step(lambda y, _: (rate(y), 0.0), c, 0.1)[0])
    assert torch.equal(heun(rate, c, 0.1), ssp_rk2_step(lambda y, _: (rate(y), 0.0), c, 0.1)[0])
    # Heun is a convex combination of Euler steps: ½c + ½ E(E(c))
    assert torch.allclose(heun(rate, c, 0.1), 0.5 * c + 0.5 * forward_euler(rate, forward_euler(rate, c, 0.1), 0.1),
                          rtol=1e-15, atol=1e-15)


def test_tensor_time_step_gives_the_float_result() -> None:
    """A compiled step takes Δt as a 0-d tensor: the arithmetic is the same as with a float."""
    c = torch.rand(7, generator=torch.Generator().manual_seed(2), dtype=F64)
    for stepper in SCHEMES.values():
        forcings = (None,) * len(stepper.stage_times)
        a, qa = stepper.step(_decay, c, 0.3, forcings)
        b, qb = stepper.step(_decay, c, torch.tensor(0.3, dtype=F64), forcings)
        assert torch.equal(a, b) and torch.equal(torch.as_tensor(qa), qb)


def _upwind(c: torch.Tensor, _forcing: object) -> tuple[torch.Tensor, float]:
    """dc/dt = −(c_i − c_{i−1}) on a periodic line (unit speed and spacing): forward Euler is positive
    and total-variation diminishing for Δt ≤ Δt_FE = 1, and not beyond."""
    return -(c - c.roll(1)), 0.0


def _total_variation(c: torch.Tensor) -> float:
    return (c - c.roll(1)).abs().sum().item()


@pytest.mark.parametrize("stages", [2, 3, 4, 6, 10])
def test_ssp_rk2_keeps_positivity_and_tvd_up_to_its_coefficient(stages: int) -> None:
    """SSPRK(s,2) is TVD and positive on upwind advection at Δt = (s − 1) Δt_FE (its SSP coefficient),
    over many steps of a square wave; 30 % beyond it, the wave overshoots or turns negative."""
    stepper = make_stepper("ssp_rk2", stages)
    assert stepper.ssp_coefficient == stages - 1 and stepper.stages == stages
    square = torch.zeros(64, dtype=F64)
    square[8:24] = 1.0

    def march(dt: float) -> tuple[float, float, float]:
        c, tv = square.clone(), _total_variation(square)
        worst = 0.0
        for _ in range(40):
            c, _ = stepper.step(_upwind, c, dt, (None,) * stages)
            worst = max(worst, _total_variation(c) - tv)
        return c.min().item(), c.max().item(), worst

    low, high, tv_gain = march(stepper.ssp_coefficient)
    assert low >= -1e-14 and high <= 1 + 1e-14 and tv_gain <= 1e-12
    low, high, tv_gain = march(1.3 * stepper.ssp_coefficient)
    assert low < -1e-6 or high > 1 + 1e-6 or tv_gain > 1e-6


def test_two_stage_ssp_rk2_is_heun_and_bad_stage_counts_are_refused() -> None:
    c = torch.rand(9, generator=torch.Generator().manual_seed(3), dtype=F64)
    a, qa = ssp_rk2_stages(2)(_decay, c, 0.2, (None, None))
    b, qb = ssp_rk2_step(_decay, c, 0.2, (None, None))
    assert torch.allclose(a, b, rtol=1e-15, atol=0) and torch.allclose(qa, qb, rtol=1e-15, atol=0)
    assert make_stepper("ssp_rk2", 2) is STEPPERS["ssp_rk2"] and isinstance(make_stepper("ssp_rk2", 5), Stepper)
    assert make_stepper("ssp_rk2", 5).stage_times == (0.0, 0.25, 0.5, 0.75, 1.0)
    with pytest.raises(ValueError, match="stages"):
        make_stepper("euler", 3)
    with pytest.raises(ValueError, match="stages"):
        make_stepper("ssp_rk2", 1)
    with pytest.raises(ValueError, match="time_stepping"):
        make_stepper("rk4")
