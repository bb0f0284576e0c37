"""The steady flow of a geometry, solved once and cached on disk by the hash of what determines it.

Key: room, obstacles, inlets, exhausts and flow model (not the source, diffusivity or times), so
every case of a campaign over source positions reuses one Navier–Stokes solve, and a file lock per key
makes simulations that ask at once solve it once. The cache lives in
``$CLOSEDLOOP_FLOW_CACHE`` (default ``~/.cache/closedloop/flows``; ``off`` disables it). Files are
written atomically and read with ``weights_only=True``; an unreadable file is solved again.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from closedloop.simulators.flow import SteadyFlow, potential_flow
from closedloop.simulators.geometry import RoomGeometry
from closedloop.simulators.scenario import Scenario

FLOW_CODE_VERSION = 2  # bump when a solver change alters its result


@dataclass
class FlowField:
    flow: SteadyFlow
    eddy_viscosity: torch.Tensor | None  # cell field ν_t (m²/s), None for potential flow
    cached: bool
    key: str


def flow_key(scenario: Scenario) -> str:
    data = scenario.model_dump(mode="json", include={"room", "obstacles", "inlets", "exhausts", "flow"})
    data["version"] = FLOW_CODE_VERSION
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:20]


def cache_dir() -> Path | None:
    value = os.environ.get("CLOSEDLOOP_FLOW_CACHE", "")
    if value.lower() == "off":
        return None
    return Path(value) if value else Path.home() / ".cache" / "closedloop" / "flows"


def solve_flow(scenario: Scenario, geometry: RoomGeometry) -> tuple[SteadyFlow, torch.Tensor | None]:
    if scenario.flow.model == "potential":
        return potential_flow(scenario, geometry), None
    from closedloop.simulators.navier_stokes import NavierStokesSettings, navier_stokes_flow

    overrides = {"max_iterations": scenario.flow.max_iterations}
    if scenario.flow.mixing_length is not None:
        overrides["mixing_length"] = scenario.flow.mixing_length
    return navier_stokes_flow(scenario, geometry, NavierStokesSettings(**overrides))


@contextlib.contextmanager
def geometry_lock(root: Path | None, key: str) -> Iterator[None]:
    """Hold ``root/key.lock`` (``fcntl.flock``, exclusive) while one geometry's flow is looked up or
    solved, so concurrent simulations of one geometry (threads or processes) solve it once: the
    first solves and writes, the others wait and read its file. No cache (``off``): no lock."""
    if root is None:
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def steady_flow(scenario: Scenario, geometry: RoomGeometry) -> FlowField:
    """The scenario's steady flow (float64, CPU), from the cache when present; solved once per geometry
    however many simulations ask at once (:func:`geometry_lock`)."""
    key = flow_key(scenario)
    root = cache_dir()
    with geometry_lock(root, key):
        return _cached_or_solved(scenario, geometry, key, root)


def _cached_or_solved(scenario: Scenario, geometry: RoomGeometry, key: str, root: Path | None) -> FlowField:
    path = root / f"{key}.pt" if root is not None else None
    if path is not None and path.exists():
        try:
            data = torch.load(path, weights_only=True, map_location="cpu")
            flow = SteadyFlow(velocity=tuple(data["velocity"]), supply=data["supply"],  # type: ignore[arg-type]
                              iterations=data["iterations"], residual=data["residual"])
            return FlowField(flow, data["eddy_viscosity"], cached=True, key=key)
        except Exception:  # noqa: BLE001 - a damaged cache entry is simply solved again
            pass
    flow, nu_t = solve_flow(scenario, geometry)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            torch.save({"velocity": list(flow.velocity), "supply": flow.supply, "iterations": flow.iterations,
                        "residual": flow.residual, "eddy_viscosity": nu_t}, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return FlowField(flow, nu_t, cached=False, key=key)
