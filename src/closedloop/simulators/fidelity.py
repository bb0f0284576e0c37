"""Fidelity levels: conservative restriction of a plane series onto a coarser plane grid, and the
prior cost of a simulation (fluid cells × time steps).

Restriction. A level at cell size h_l = h_s / k (k a whole number) gives a plane series
c_l (T, k·nx, k·ny) with band weights w_l (k·nx, k·ny) = the fluid height of the band in each
column (``PlaneReduction.denominator``, m). On the surrogate's grid h_s each cell I takes the
weighted block mean

    c_s[I] = Σ_{i ∈ I} w_i c_i / Σ_{i ∈ I} w_i,   W_s[I] = Σ_{i ∈ I} w_i / k²,

so the band's content Σ_i w_i c_i h_l² = Σ_I W_s[I] c_s[I] h_s² is preserved exactly (zero where a
block holds no fluid). Shapes: ``plane`` (..., nx_l, ny_l), ``weights`` (nx_l, ny_l).

Prior cost (before any case has run): cells × steps, with steps = horizon / Δt × stages, Δt the
explicit limit of the transport step estimated from the inlets' largest speed (×2 for the jet's
acceleration) and K: Δt = C safety / (a Σ_d u/h + 2 Σ_d K/h²), a = 2 for TVD, C the scheme's SSP
coefficient and stages its evaluations a step (``Numerics.stepper``: SSPRK(s,2) C = s − 1, s stages).
Only ratios between levels matter; a campaign fits the seconds per unit of prior cost per level
from the CPU-seconds its cases record (closedloop.lab.campaign.cost).
"""
from __future__ import annotations

import math

import torch

from closedloop.simulators.geometry import room_geometry
from closedloop.simulators.plane import plane_reduction
from closedloop.simulators.scenario import Scenario


def refinement_factor(coarse: float, fine: float) -> int:
    """k = coarse / fine, a whole number ≥ 1; ValueError saying why not otherwise."""
    k = coarse / fine
    if k < 1 - 1e-9 or abs(k - round(k)) > 1e-6:
        raise ValueError(f"cell size {fine} m does not refine the surrogate's grid of {coarse} m "
                         f"(h_s / h_l = {k:.4g} must be a whole number ≥ 1)")
    return int(round(k))


def band_weights(scenario: Scenario) -> torch.Tensor:
    """w (nx, ny): the fluid height of the plane band in each column (m), float64."""
    return plane_reduction(scenario, room_geometry(scenario)).denominator


def restrict_plane(plane: torch.Tensor, weights: torch.Tensor, factor: int) -> torch.Tensor:
    """Weighted k × k block means of ``plane`` (..., nx_l, ny_l) → (..., nx_l/k, ny_l/k)."""
    if factor == 1:
        return plane
    nx, ny = plane.shape[-2:]
    if tuple(weights.shape) != (nx, ny):
        raise ValueError(f"weights: shape {tuple(weights.shape)} does not match the plane's {(nx, ny)}")
    if nx % factor or ny % factor:
        raise ValueError(f"plane: {nx} × {ny} cells do not split into {factor} × {factor} blocks")
    w = weights.to(plane.dtype)
    lead = plane.shape[:-2]

    def blocks(a: torch.Tensor) -> torch.Tensor:
        return a.reshape(*a.shape[:-2], nx // factor, factor, ny // factor, factor).sum(dim=(-3, -1))

    num = blocks(plane * w)
    den = blocks(w.expand(*lead, nx, ny)) if lead else blocks(w)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def restricted_weights(weights: torch.Tensor, factor: int) -> torch.Tensor:
    """W_s = Σ_block w / k²: the coarse grid's band height that the restriction conserves with."""
    nx, ny = weights.shape
    return weights.reshape(nx // factor, factor, ny // factor, factor).sum(dim=(1, 3)) / factor ** 2


def prior_cost(scenario: Scenario, fluid_cells: int | None = None) -> float:
    """Fluid cells × time steps (× stages) of the transport solve: the cost model's prior (see above).
    ``fluid_cells``: the count when known (points of one geometry share it), else from the grid."""
    if fluid_cells is None:
        fluid_cells = int(room_geometry(scenario).fluid.sum().item())
    h = scenario.room.spacing
    speed = 2.0 * max((inlet.speed for inlet in scenario.inlets), default=0.0)
    num = scenario.numerics
    adv = 2.0 if num.advection == "tvd" else 1.0
    rate = sum(adv * speed / hd + 2.0 * scenario.eddy_diffusivity / hd ** 2 for hd in h)
    stepper = num.stepper()
    steps = math.ceil(scenario.time.horizon * rate / (num.safety * stepper.ssp_coefficient))
    stages = stepper.stages
    return float(fluid_cells) * steps * stages
