"""Reference 3D scalar transport in a room: scenarios, geometry, steady flow, solver, plane reduction.

No Prefect here; everything runs in a plain Python shell.
"""
from closedloop.simulators.scenario import Scenario, load_scenario
from closedloop.simulators.reference import SimulationResult, simulate

__all__ = ["Scenario", "load_scenario", "SimulationResult", "simulate"]
