"""The discrete divergence: it telescopes to the boundary net flux (the divergence theorem)."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics import boundary_net_flux, divergence
from fv_test_fields import F64, grid_for


@pytest.mark.parametrize("ndim", [2, 3])
def test_divergence_telescopes_to_boundary_net_flux(ndim):
    """∫∇·F dV = ∮F·n dA for arbitrary face fields (the discrete divergence theorem)."""
    gen = torch.Generator().manual_seed(30 + ndim)
    grid = grid_for(ndim)
    fluxes = [torch.randn(grid.face_shape(a), generator=gen, dtype=F64) for a in range(ndim)]
    lhs = divergence(fluxes, grid).sum() * grid.cell_volume
    rhs = boundary_net_flux(fluxes, grid)
    assert rhs.shape == ()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)
    # only the boundary faces contribute: changing interior faces leaves the net flux unchanged
    f2 = [f.clone() for f in fluxes]
    f2[0].narrow(0, 1, grid.shape[0] - 1).add_(1.0)
    assert torch.allclose(boundary_net_flux(f2, grid), rhs, rtol=0, atol=1e-12)
    f2[0].select(0, grid.shape[0]).add_(1.0)  # one more unit out through the x+ face
    assert torch.allclose(boundary_net_flux(f2, grid), rhs + grid.face_area(0) * grid.shape[1]
                          * (1 if ndim == 2 else grid.shape[2]), rtol=1e-12)
