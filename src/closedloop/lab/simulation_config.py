"""``[simulation]`` of a campaign config: who simulates, where, with what limits and retries.

``simulator`` chooses the reference (``builtin``, ``openfoam`` or ``command``; simulators/interface.py)
with its settings table (``[simulation.command]``, ``[simulation.openfoam]``); the rest places the
simulations (threads or Dask, how many at once) and bounds them (memory, cells, timeout, retries).
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from closedloop.schema import Strict
from closedloop.simulators.command import CommandSettings
from closedloop.simulators.interface import Simulator, simulator_for
from closedloop.simulators.openfoam.settings import OpenFOAMSettings

Finite = Annotated[float, Field(allow_inf_nan=False)]


class SimulationConfig(Strict):
    """``[simulation]``: who simulates (``simulator``, simulators/interface.py), where, with what limits."""

    simulator: Literal["builtin", "openfoam", "command"] = Field(
        default="builtin", description="The reference: this project's solver, OpenFOAM, or an external command")
    command: CommandSettings | None = Field(default=None, description='The program of simulator = "command"')
    openfoam: OpenFOAMSettings = Field(default_factory=OpenFOAMSettings,
                                       description='Settings of simulator = "openfoam"')
    device: str = Field(default="cpu", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    max_concurrent: int | None = Field(
        default=None, ge=1, le=1024, description="Simulations at once in the flow's threads; default: the "
                                                 "cores this process may use (each then gets cores / that "
                                                 "many torch threads)")
    retries: int = Field(default=2, ge=0, le=10, description="Further attempts after a failed simulation")
    retry_delay_seconds: Finite = Field(default=1.0, ge=0, le=3600,
                                        description="Wait before the first retry; doubled before each next one")
    timeout_seconds: Finite | None = Field(default=None, gt=0,
                                           description="An attempt running longer fails (and is retried); "
                                                       "none by default")

    runner: Literal["threads", "dask"] = Field(
        default="threads", description="Where simulations run: worker threads of the flow, or Dask workers")
    dask_address: str | None = Field(
        default=None,
        description="An existing Dask scheduler, e.g. tcp://127.0.0.1:8786; none starts a local cluster")
    dask_workers: int = Field(default=2, ge=1, le=256,
                              description="Worker processes (one thread each) of the local Dask cluster")
    max_memory_gb: Finite | None = Field(
        default=None, gt=0, description="Refuse a simulation whose estimated memory is larger (simulators/budget.py); "
                                        "default: half of this machine's memory")
    max_cells: int | None = Field(default=None, ge=8, description="Refuse a simulation with more cells")

    @field_validator("dask_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+", value):
            raise ValueError(f"expected a scheduler address such as tcp://127.0.0.1:8786, got {value!r}")
        return value

    @model_validator(mode="after")
    def _command(self) -> SimulationConfig:
        if self.simulator == "command" and self.command is None:
            raise ValueError('command: simulator = "command" needs a [simulation.command] table '
                             '(command = ["program", "arg", ...])')
        if self.simulator != "command" and self.command is not None:
            raise ValueError(f'command: a [simulation.command] table is only used with simulator = "command" '
                             f'(simulator is {self.simulator!r})')
        return self

    def simulator_for(self) -> Simulator:
        """The configured simulator (simulators/interface.py)."""
        return simulator_for(self.simulator, command=self.command, openfoam=self.openfoam)

    def producer(self) -> dict[str, Any] | None:
        """What besides the scenario decides a case's result (the simulator's identity; None: built-in)."""
        return None if self.simulator == "builtin" else self.simulator_for().identity()

    @model_validator(mode="after")
    def _runner(self) -> SimulationConfig:
        if self.dask_address is not None and self.runner != "dask":
            raise ValueError(f"dask_address: a Dask scheduler is only used with runner = \"dask\" "
                             f"(runner is {self.runner!r})")
        return self

    def retry_delays(self) -> list[float]:
        """Exponential backoff: ``retry_delay_seconds × 2^k`` before retry k (k = 0 … retries − 1)."""
        return [self.retry_delay_seconds * 2 ** k for k in range(self.retries)]
