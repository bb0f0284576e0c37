"""The ``Simulator`` interface: one scenario in, one :class:`SimulationResult` out, whoever computes it.

    simulate(scenario) -> SimulationResult
        times (T,), plane (T, nx, ny) on the scenario's plane grid (band average), plane_mask (nx, ny),
        probes {name: (T,)}, mass budget (T,) ×3, wall and CPU seconds, simulator name and version

Three implementations, chosen by ``[simulation] simulator``:

- ``builtin``: this project's torch reference (:func:`closedloop.simulators.reference.simulate`);
- ``openfoam``: an OpenFOAM case built from the scenario (:mod:`closedloop.simulators.openfoam`);
- ``command``: any external program a lab has (:mod:`closedloop.simulators.command`).

A case is identified by its scenario *and* what simulated it (``identity()``: name, version and the
settings that change its numbers), so an OpenFOAM case and a built-in case of one scenario are two cases;
the built-in reference's identity is None, which keeps the scenario's own hash (the ids of every case
written before this interface existed). Everything downstream (the case file, the ledger, validation,
training) is indifferent to who produced a result.

CPU seconds: for the built-in solver, the CPU time of the calling thread when torch runs on one thread
(exact, and right when several simulations share a process), else of the whole process (an
over-count when other work runs beside it); external simulators report their child processes' CPU.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

import closedloop
from closedloop.simulators.reference import ProgressFn, SimulationResult
from closedloop.simulators.reference import simulate as reference_simulate
from closedloop.simulators.scenario import Scenario

SIMULATORS = ("builtin", "openfoam", "command")


@runtime_checkable
class Simulator(Protocol):
    """What the lab needs of a simulator: a name, a version, an identity and ``simulate``."""

    name: str

    def version(self) -> str:
        """The code and version that produce the numbers, e.g. ``"OpenFOAM v1912"``."""
        ...

    def identity(self) -> dict[str, Any] | None:
        """What besides the scenario decides the result; it enters the case id (None: the scenario alone)."""
        ...

    def simulate(self, scenario: Scenario, *, device: str | torch.device = "auto",
                 dtype: torch.dtype = torch.float64, progress: ProgressFn | None = None,
                 max_memory_gb: float | None = None, max_cells: int | None = None,
                 workdir: Path | None = None) -> SimulationResult:
        """Simulate ``scenario``; ``workdir`` keeps an external code's files and logs (None: a temporary one)."""
        ...


def cpu_clock() -> Callable[[], float]:
    """The CPU clock that measures one simulation: this thread's when torch uses one thread, else the process's."""
    return time.thread_time if torch.get_num_threads() == 1 else time.process_time


class BuiltinSimulator:
    """This project's torch reference solver behind the ``Simulator`` interface."""

    name = "builtin"

    def __init__(self, compile: bool | None = None) -> None:
        self.compile = compile

    def version(self) -> str:
        return f"closedloop {closedloop.__version__}"

    def identity(self) -> dict[str, Any] | None:
        return None

    def simulate(self, scenario: Scenario, *, device: str | torch.device = "auto",
                 dtype: torch.dtype = torch.float64, progress: ProgressFn | None = None,
                 max_memory_gb: float | None = None, max_cells: int | None = None,
                 workdir: Path | None = None) -> SimulationResult:
        clock = cpu_clock()
        cpu0 = clock()
        result = reference_simulate(scenario, device=device, dtype=dtype, progress=progress, compile=self.compile,
                                    max_memory_gb=max_memory_gb, max_cells=max_cells)
        result.cpu_seconds = clock() - cpu0
        result.simulator, result.simulator_version = self.name, self.version()
        return result


def simulator_for(name: str, *, command: Any = None, openfoam: Any = None) -> Simulator:
    """The simulator called ``name``, configured by its settings (``command`` is required for ``"command"``)."""
    if name == "builtin":
        return BuiltinSimulator()
    if name == "command":
        from closedloop.simulators.command import CommandSimulator

        if command is None:
            raise ValueError('simulation.command: simulator = "command" needs a [simulation.command] table')
        return CommandSimulator(command)
    if name == "openfoam":
        from closedloop.simulators.openfoam import OpenFOAMSettings, OpenFOAMSimulator

        return OpenFOAMSimulator(openfoam if openfoam is not None else OpenFOAMSettings())
    raise ValueError(f"simulation.simulator: unknown simulator {name!r}; expected one of {', '.join(SIMULATORS)}")
