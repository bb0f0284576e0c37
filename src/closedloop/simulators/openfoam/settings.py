"""What, besides the scenario, decides an OpenFOAM result: the settings that change its numbers.

Everything here enters the simulator's identity (and so the case id), except ``keep_case`` and
``timeout_s``, which change where files are kept and how long a tool may run, not the result.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from closedloop.schema import Strict
from closedloop.simulators.scenario_source import PositiveFloat


class OpenFOAMSettings(Strict):
    """Numerics of the OpenFOAM cases.

    ``max_courant``: the fixed time step is the largest that keeps Co = Σ_a |u_a| Δt / h_a ≤ this in
    every cell (implicit Euler is stable at any Co; this bounds its time error), shortened so that
    output times fall on steps. ``advection``: the scalar's convection scheme (``vanLeer``: TVD, the
    limiter ours uses; ``upwind``: first order; ``linearUpwind``: second order, unlimited).
    ``moving_source_step``: a moving source is a chain of static sources, each held for the time the
    source takes to move this fraction of the smallest cell edge. ``turbulence``: the RANS model of
    simpleFoam for ``flow.model = "navier_stokes"``; ``inlet_intensity`` and ``inlet_mixing_length``
    (m) set k and ε at the inlets; ``flow_iterations`` caps the SIMPLE iterations, ``flow_residual`` the
    initial residuals at which they stop; ``pressure_velocity``: SIMPLEC (consistent, U relaxed 0.9, p
    unrelaxed) or SIMPLE (U 0.7, p 0.3).
    """

    max_courant: PositiveFloat = 0.5
    advection: Literal["vanLeer", "upwind", "linearUpwind"] = "vanLeer"
    moving_source_step: PositiveFloat = 0.5
    turbulence: Literal["kEpsilon", "realizableKE", "RNGkEpsilon"] = "kEpsilon"
    inlet_intensity: PositiveFloat = 0.05
    inlet_mixing_length: PositiveFloat = 0.05
    kinematic_viscosity: PositiveFloat = 1.5e-5
    flow_iterations: int = Field(default=2000, ge=1)
    pressure_velocity: Literal["SIMPLEC", "SIMPLE"] = "SIMPLEC"
    flow_residual: PositiveFloat = 1e-5
    solver_tolerance: PositiveFloat = 1e-12
    keep_case: bool = False
    timeout_s: PositiveFloat = 3600.0

    def numerics(self) -> dict:
        """The settings that change the numbers (the simulator identity's part)."""
        return self.model_dump(exclude={"keep_case", "timeout_s"})
