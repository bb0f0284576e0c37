"""The Simulator interface: the built-in solver behind it gives exactly what ``simulate`` gives, with its
name, version and CPU seconds; the case id is the scenario's for the built-in one, another for any other."""
from __future__ import annotations

import pytest
import torch

from closedloop.simulators import simulate
from closedloop.simulators.interface import BuiltinSimulator, Simulator, simulator_for
from tests.simulators.sim_test_scenarios import room


def test_builtin_is_the_reference_solver_with_provenance():
    scenario = room(time={"horizon": 20.0, "output_interval": 10.0})
    sim = simulator_for("builtin")
    assert isinstance(sim, Simulator) and isinstance(sim, BuiltinSimulator)
    res, ref = sim.simulate(scenario, device="cpu"), simulate(scenario, device="cpu")
    assert torch.equal(res.plane, ref.plane) and torch.equal(res.mass_exhausted, ref.mass_exhausted)
    assert res.simulator == "builtin" and res.simulator_version.startswith("closedloop ")
    assert res.cpu_seconds is not None and 0 < res.cpu_seconds < 60
    assert sim.identity() is None and scenario.case_id(sim.identity()) == scenario.case_id()


def test_case_id_mixes_in_the_producer():
    scenario = room()
    a, b = scenario.case_id({"simulator": "x", "version": "1"}), scenario.case_id({"simulator": "x", "version": "2"})
    assert len({a, b, scenario.case_id()}) == 3
    assert a == scenario.case_id({"version": "1", "simulator": "x"})  # key order does not matter


def test_unknown_simulator_and_missing_settings_name_the_field():
    with pytest.raises(ValueError, match="simulation.simulator: unknown simulator 'fluent'"):
        simulator_for("fluent")
    with pytest.raises(ValueError, match=r"simulation.command: simulator = \"command\" needs"):
        simulator_for("command")
