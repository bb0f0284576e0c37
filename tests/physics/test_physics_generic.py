"""Batch dimensions, dtype genericity, differentiability and exactness of the FV operators."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics import (Grid, advect_upwind, boundary_outflow, diffuse, divergence,
                                face_diffusivity, face_gradient, transport_rate)
from fv_test_fields import F64, grid_for, random_solid, stream_velocity

B = 4


def _fields(ndim: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    grid = grid_for(ndim)
    solid = random_solid(grid.shape, 0.15, gen)
    vel = stream_velocity(grid, gen, amplitude=0.3, solid=solid)
    k_cell = 0.01 + 0.1 * torch.rand(grid.shape, generator=gen, dtype=F64)
    diff = face_diffusivity(k_cell, ~solid, grid)
    return gen, grid, solid, vel, diff


@pytest.mark.parametrize("ndim", [2, 3])
def test_batched_field_matches_each_sample(ndim):
    gen, grid, _, vel, diff = _fields(ndim, seed=1)
    c = torch.rand((B, *grid.shape), generator=gen, dtype=F64)
    s = torch.rand((B, *grid.shape), generator=gen, dtype=F64)
    batched = transport_rate(c, vel, diff, s, grid)
    assert batched.shape == c.shape
    for b in range(B):
        single = transport_rate(c[b], vel, diff, s[b], grid)
        assert torch.allclose(batched[b], single, rtol=0, atol=1e-15)
    # the samples really differ (a broadcast of one sample would pass the loop above otherwise)
    assert (batched[0] - batched[1]).abs().max() > 1e-3


@pytest.mark.parametrize("ndim", [2, 3])
def test_batched_velocity_and_outflow(ndim):
    """Per-sample velocities (*batch, *face_shape) and a (*batch,) boundary outflow."""
    gen = torch.Generator().manual_seed(2)
    grid = grid_for(ndim)
    vels = []
    for b in range(B):
        v = list(stream_velocity(grid, gen, amplitude=0.3))
        v[0] = v[0] + 0.2 * (b + 1)  # plug flow through the box, different per sample
        vels.append(v)
    vel_b = tuple(torch.stack([v[a] for v in vels]) for a in range(ndim))
    c = torch.rand((B, *grid.shape), generator=gen, dtype=F64)
    rate = advect_upwind(c, vel_b, grid)
    out = boundary_outflow(c, vel_b, grid)
    assert out.shape == (B,)
    for b in range(B):
        assert torch.allclose(rate[b], advect_upwind(c[b], vels[b], grid), rtol=0, atol=1e-15)
        assert torch.allclose(out[b], boundary_outflow(c[b], vels[b], grid), rtol=1e-15, atol=0)
    # two leading batch dimensions
    c2 = c.reshape(2, B // 2, *grid.shape)
    r2 = advect_upwind(c2, vels[0], grid)
    assert torch.allclose(r2.reshape(B, *grid.shape), advect_upwind(c, vels[0], grid), atol=1e-15)


@pytest.mark.parametrize("ndim", [2, 3])
def test_float32_matches_float64(ndim):
    gen, grid, solid, vel, _ = _fields(ndim, seed=3)
    k_cell = 0.01 + 0.1 * torch.rand(grid.shape, generator=gen, dtype=F64)
    c = torch.rand(grid.shape, generator=gen, dtype=F64)
    s = torch.rand(grid.shape, generator=gen, dtype=F64)
    r64 = transport_rate(c, vel, face_diffusivity(k_cell, ~solid, grid), s, grid)
    vel32 = tuple(u.float() for u in vel)
    d32 = face_diffusivity(k_cell.float(), ~solid, grid, dtype=torch.float32)
    r32 = transport_rate(c.float(), vel32, d32, s.float(), grid)
    assert r32.dtype == torch.float32  # no silent promotion to double
    assert all(d.dtype == torch.float32 for d in d32)
    err = (r32.double() - r64).abs().max().item() / r64.abs().max().item()
    assert err < 1e-5, err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    gen, grid, solid, vel, diff = _fields(3, seed=4)
    c = torch.rand(grid.shape, generator=gen, dtype=F64)
    r_cpu = transport_rate(c, vel, diff, None, grid)
    dev = torch.device("cuda")
    r_gpu = transport_rate(c.to(dev), [u.to(dev) for u in vel], [d.to(dev) for d in diff], None, grid)
    assert r_gpu.device.type == "cuda"
    assert torch.allclose(r_gpu.cpu(), r_cpu, rtol=1e-12, atol=1e-14)


def test_gradcheck_diffuse_wrt_face_diffusivity_and_field():
    grid = Grid(shape=(3, 4), spacing=(0.5, 0.7))
    gen = torch.Generator().manual_seed(5)
    c = torch.rand(grid.shape, generator=gen, dtype=F64).requires_grad_()
    d = tuple((0.1 + torch.rand(grid.face_shape(a), generator=gen, dtype=F64)).requires_grad_()
              for a in range(2))
    assert torch.autograd.gradcheck(lambda c_, dx, dy: diffuse(c_, (dx, dy), grid), (c, *d))
    # and the gradient w.r.t. D is not trivially zero on interior faces
    g = torch.autograd.grad(diffuse(c, d, grid).pow(2).sum(), d)
    assert g[0].narrow(0, 1, 2).abs().max() > 0 and g[1].narrow(1, 1, 3).abs().max() > 0


def test_gradcheck_face_diffusivity_harmonic_mean_and_advection():
    grid = Grid(shape=(3, 3, 2), spacing=(0.5, 0.4, 0.6))
    gen = torch.Generator().manual_seed(6)
    fluid = torch.ones(grid.shape, dtype=torch.bool)
    fluid[1, 1, 0] = False
    k = (0.1 + torch.rand(grid.shape, generator=gen, dtype=F64)).requires_grad_()
    c = torch.rand(grid.shape, generator=gen, dtype=F64)
    assert torch.autograd.gradcheck(lambda k_: diffuse(c, face_diffusivity(k_, fluid, grid), grid), (k,))
    # upwind advection w.r.t. the field and a velocity bounded away from zero (off the kink)
    vel = tuple((0.2 + torch.rand(grid.face_shape(a), generator=gen, dtype=F64))
                * torch.where(torch.rand(grid.face_shape(a), generator=gen) < 0.5, -1.0, 1.0).double()
                for a in range(3))
    vel = tuple(u.requires_grad_() for u in vel)
    c = c.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda c_, *v: advect_upwind(c_, v, grid), (c, *vel))


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_scalar_tensor_diffusivity_keeps_gradient():
    grid = Grid(shape=(4, 3), spacing=(0.5, 0.5))
    fluid = torch.ones(grid.shape, dtype=torch.bool)
    k = torch.tensor(0.3, dtype=F64, requires_grad=True)
    c = torch.rand(grid.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    rate = diffuse(c, face_diffusivity(k, fluid, grid), grid)
    assert rate.requires_grad
    (g,) = torch.autograd.grad(rate.pow(2).sum(), k)
    # ∇·(K∇c) is linear in K, so d/dK Σ r² = 2 Σ r²/K
    assert torch.allclose(g, 2 * rate.pow(2).sum() / k)


@pytest.mark.parametrize("ndim", [2, 3])
def test_operators_exact_on_polynomials(ndim):
    """Second-order FV: the Laplacian of a quadratic is exact in the interior; gradients of linear exact."""
    grid = grid_for(ndim)
    x = torch.meshgrid(*[grid.cell_centers(a) for a in range(ndim)], indexing="ij")
    coef = [0.7, -1.3, 0.4][:ndim]
    lin = sum(a * xi for a, xi in zip(coef, x))
    for a in range(ndim):
        g = face_gradient(lin, grid, a)
        inner = g.narrow(a, 1, grid.shape[a] - 1)
        assert torch.allclose(inner, torch.full_like(inner, coef[a]), rtol=1e-12, atol=1e-12)
        assert torch.all(g.select(a, 0) == 0) and torch.all(g.select(a, grid.shape[a]) == 0)
    quad = sum(a * xi ** 2 for a, xi in zip(coef, x))
    fluid = torch.ones(grid.shape, dtype=torch.bool)
    lap = diffuse(quad, face_diffusivity(0.5, fluid, grid), grid)
    interior = tuple(slice(1, n - 1) for n in grid.shape)
    expected = 0.5 * 2 * sum(coef)
    assert torch.allclose(lap[interior], torch.full_like(lap[interior], expected), rtol=1e-11)
    # divergence of a linear face field is its (constant) trace
    faces = [coef[a] * grid.face_positions(a).reshape([-1 if i == a else 1 for i in range(ndim)])
             .expand(grid.face_shape(a)) for a in range(ndim)]
    div = divergence(faces, grid)
    assert torch.allclose(div, torch.full_like(div, sum(coef)), rtol=1e-12, atol=1e-12)
