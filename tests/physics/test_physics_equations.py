"""physics.equations.TransportTerms: dc/dt and the boundary outflow close the mass budget of an
open box to round-off, upwind terms agree with ``transport_rate``, and the stable step doubles the
advective limit for MUSCL–van Leer."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics import Grid, TransportTerms, face_diffusivity, open_faces, stable_time_step, transport_rate
from closedloop.physics.steppers import STEPPERS
from fv_test_fields import F64, random_solid, stream_velocity


def _open_box(tvd: bool, seed: int = 0) -> tuple[TransportTerms, torch.Tensor, torch.Tensor]:
    """A 3D box with solids, a divergence-free interior flow plus an inflow at x− and outflow at x+."""
    gen = torch.Generator().manual_seed(seed)
    grid = Grid((8, 6, 5), (0.3, 0.25, 0.4))
    solid = random_solid(grid.shape, 0.1, gen)
    solid[0] = solid[-1] = False
    fluid = ~solid
    vel = list(stream_velocity(grid, gen, amplitude=0.2, solid=solid))
    vel[0] = vel[0].clone()
    vel[0][0, 2:4, 1:3] = 0.3  # inlet
    vel[0][-1, 2:4, 1:3] = 0.3  # exhaust
    diff = face_diffusivity(0.05 + torch.rand(grid.shape, generator=gen, dtype=F64), fluid, grid)
    masks = tuple(open_faces(fluid, grid, a).to(F64) for a in range(3)) if tvd else None
    terms = TransportTerms(grid, tuple(vel), diff, masks)
    c = torch.rand(grid.shape, generator=gen, dtype=F64) * fluid
    source = torch.zeros(grid.shape, dtype=F64)
    source[3, 3, 2] = 2.0
    return terms, c, source


@pytest.mark.parametrize("tvd", [True, False], ids=["tvd", "upwind"])
def test_rate_and_outflow_close_the_budget(tvd: bool) -> None:
    """∫dc/dt dV = ∫s dV − outflow, instantaneous and over steps of either stepper."""
    terms, c, source = _open_box(tvd)
    vol = terms.grid.cell_volume
    rate, outflow = terms.rate(c, source)
    assert outflow.shape == () and outflow.item() > 0
    assert abs((rate.sum() * vol - (source.sum() * vol - outflow)).item()) < 1e-13 * c.sum().item()
    for stepper in STEPPERS.values():
        y, out, dt = c, torch.zeros((), dtype=F64), terms.stable_time_step(0.9)
        for _ in range(30):
            y, dq = stepper.step(terms.rate, y, dt, (source,) * len(stepper.stage_times))
            out = out + dq
        budget = c.sum() * vol + 30 * dt * source.sum() * vol - y.sum() * vol - out
        assert abs(budget.item()) < 1e-13 * c.sum().item() * vol
        assert y.min().item() >= 0  # positive at the stable step


def test_upwind_terms_agree_with_transport_rate_and_source_is_added() -> None:
    terms, c, source = _open_box(tvd=False)
    rate, _ = terms.rate(c)
    assert torch.allclose(rate, transport_rate(c, terms.velocity, terms.diffusivities, None, terms.grid),
                          rtol=1e-14, atol=1e-14)
    assert torch.equal(terms.rate(c, source)[0], rate + source)


def test_stable_step_doubles_the_advective_factor_for_tvd() -> None:
    tvd, _, _ = _open_box(tvd=True)
    up, _, _ = _open_box(tvd=False)
    assert up.stable_time_step(0.9) == stable_time_step(up.velocity, up.diffusivities, up.grid, safety=0.9)
    assert tvd.stable_time_step(0.9) == stable_time_step(tvd.velocity, tvd.diffusivities, tvd.grid, safety=0.9,
                                                         advection_factor=2.0)
    assert tvd.stable_time_step(0.9) < up.stable_time_step(0.9)
