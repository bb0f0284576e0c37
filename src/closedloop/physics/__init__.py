"""Finite-volume core shared by the 3D reference and the 2D surrogate.

Pure torch, differentiable, dimension-generic (2D and 3D), dtype/device generic.
Cell fields have shape ``(*batch, *grid.shape)``; a staggered face field along axis
``a`` has shape ``(*batch, *grid.face_shape(a))`` (one more entry along ``a``).
"""
from closedloop.physics.grids import Grid
from closedloop.physics.masks import open_faces
from closedloop.physics.advection import (advect_tvd, advect_upwind, boundary_net_flux, boundary_outflow,
                                          muscl_flux, upwind_flux, van_leer_slope)
from closedloop.physics.diffusion import diffuse, diffusive_flux, face_diffusivity
from closedloop.physics.divergence import divergence, face_gradient
from closedloop.physics.equations import TransportTerms, transport_rate, stable_time_step
from closedloop.physics.poisson import conjugate_gradient
from closedloop.physics.steppers import forward_euler, heun
from closedloop.physics.kernels import Kernel, compile_enabled, compile_wanted

__all__ = [
    "Grid", "open_faces", "advect_tvd", "muscl_flux", "van_leer_slope", "advect_upwind", "upwind_flux", "boundary_outflow",
    "boundary_net_flux", "diffuse", "diffusive_flux", "face_diffusivity", "divergence", "face_gradient", "TransportTerms",
    "transport_rate", "stable_time_step", "conjugate_gradient", "forward_euler", "heun", "Kernel", "compile_enabled", "compile_wanted",
]
