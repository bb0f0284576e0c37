"""Diffusion: face diffusivities (harmonic mean, closed faces), and the operator's convergence against the
analytic decay of a cosine mode.

In a closed box (Neumann walls) c(x, t) = cos(π x / L) exp(−D (π/L)² t) solves ∂c/∂t = D ∇²c.
The FV Laplacian decays the sampled mode at D (4/h²) sin²(π h / 2L) = D (π/L)² (1 − O(h²)):
the decay-rate error must fall with order 2 in h.
"""
from __future__ import annotations

import math

import pytest
import torch

from closedloop.physics import Grid, diffuse, face_diffusivity, heun, open_faces, stable_time_step
from fv_test_fields import F64

L = 1.0
D = 0.8
T = 0.06
RESOLUTIONS = (16, 32, 64)


def _decay_rate_error(n: int, ndim: int, axis: int) -> float:
    shape = tuple(n if a == axis else 3 for a in range(ndim))
    spacing = tuple(L / n if a == axis else 0.5 for a in range(ndim))
    grid = Grid(shape=shape, spacing=spacing)
    d = face_diffusivity(D, torch.ones(shape, dtype=torch.bool), grid)
    x = grid.cell_centers(axis)
    mode = torch.cos(math.pi * x / L)
    c0 = mode.reshape([-1 if a == axis else 1 for a in range(ndim)]).expand(shape).clone()
    dt_lim = stable_time_step(None, d, grid, safety=1.0)
    steps = math.ceil(T / (0.25 * dt_lim))
    dt = T / steps
    c = c0
    for _ in range(steps):
        c = heun(lambda f: diffuse(f, d, grid), c, dt)
    amp = (c * c0).sum() / (c0 * c0).sum()
    # the mode is preserved in shape (it is an eigenvector of the discrete Neumann Laplacian)
    assert torch.allclose(c, amp * c0, rtol=0, atol=1e-12)
    rate = -math.log(amp.item()) / T
    exact = D * (math.pi / L) ** 2
    return abs(rate - exact) / exact


@pytest.mark.parametrize("ndim,axis", [(2, 0), (2, 1), (3, 2)])
def test_cosine_mode_decay_rate_second_order(ndim, axis):
    errors = [_decay_rate_error(n, ndim, axis) for n in RESOLUTIONS]
    orders = [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]
    print(f"{ndim}D axis {axis}: n={RESOLUTIONS} relative decay-rate errors {errors} observed orders {orders}")
    assert all(o >= 1.8 for o in orders), (errors, orders)
    # and the errors are in the asymptotic range: close to the leading term (π h / L)² / 12
    h = L / RESOLUTIONS[-1]
    assert errors[-1] == pytest.approx((math.pi * h / L) ** 2 / 12, rel=0.05)


def test_face_diffusivity_values():
    grid = Grid(shape=(3, 2), spacing=(1.0, 1.0))
    fluid = torch.ones(grid.shape, dtype=torch.bool)
    fluid[2, 1] = False
    k = torch.tensor([[1.0, 2.0], [3.0, 4.0], [6.0, 8.0]], dtype=F64)
    dx, dy = face_diffusivity(k, fluid, grid)
    assert dx.shape == (4, 2) and dy.shape == (3, 3)
    hm = lambda a, b: 2 * a * b / (a + b)  # noqa: E731
    expected_x = torch.tensor([[0, 0], [hm(1, 3), hm(2, 4)], [hm(3, 6), 0], [0, 0]], dtype=F64)
    expected_y = torch.tensor([[0, hm(1, 2), 0], [0, hm(3, 4), 0], [0, 0, 0]], dtype=F64)
    assert torch.allclose(dx, expected_x, rtol=1e-15) and torch.allclose(dy, expected_y, rtol=1e-15)
    # a constant: the value on open faces, zero on faces touching solids and the box boundary
    cx, cy = face_diffusivity(0.25, fluid, grid)
    assert torch.equal(cx, 0.25 * open_faces(fluid, grid, 0).double())
    assert torch.equal(cy, 0.25 * open_faces(fluid, grid, 1).double())
    with pytest.raises(ValueError, match="fluid mask shape"):
        open_faces(torch.ones((2, 2), dtype=torch.bool), grid, 0)
