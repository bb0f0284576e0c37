"""Scenarios: a room, its obstacles, supply inlets and exhausts, a source, the plane and probes.

Pydantic models, loadable from TOML. Every check that can be made without compute is made
here, so that a scenario that cannot be valid fails before any simulation starts, with the
field named in the message.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Vec3 = tuple[Finite, Finite, Finite]
Vec2 = tuple[Finite, Finite]
Face = Literal["x-", "x+", "y-", "y+", "z-", "z+"]

FACE_AXES = {"x": 0, "y": 1, "z": 2}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Room(Strict):
    """A rectangular room [0, Lx] × [0, Ly] × [0, Lz] meshed with cubes of ``cell_size``."""

    size: tuple[PositiveFloat, PositiveFloat, PositiveFloat]
    cell_size: PositiveFloat

    @model_validator(mode="after")
    def _cells_fit(self) -> Room:
        for axis, length in zip("xyz", self.size):
            n = length / self.cell_size
            if abs(n - round(n)) > 1e-6:
                raise ValueError(f"size along {axis} ({length} m) is not a whole number of "
                                 f"cell_size ({self.cell_size} m)")
            if round(n) < 2:
                raise ValueError(f"size along {axis} holds fewer than 2 cells of cell_size")
        return self

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(round(s / self.cell_size)) for s in self.size)  # type: ignore[return-value]


class Obstacle(Strict):
    """A solid box (pillar, partition, furniture) from corner ``min`` to corner ``max``."""

    name: str = "obstacle"
    min: Vec3
    max: Vec3

    @model_validator(mode="after")
    def _ordered(self) -> Obstacle:
        for axis, lo, hi in zip("xyz", self.min, self.max):
            if not lo < hi:
                raise ValueError(f"min.{axis} ({lo}) must be below max.{axis} ({hi})")
        return self


class Vent(Strict):
    """A rectangular opening on a room face.

    ``center`` and ``size`` are given in the two coordinates that span the face, in x, y, z
    order (a vent on ``x-`` is placed by (y, z); one on ``z+``, the ceiling, by (x, y)).
    """

    face: Face
    center: Vec2
    size: tuple[PositiveFloat, PositiveFloat]

    @property
    def normal_axis(self) -> int:
        return FACE_AXES[self.face[0]]

    @property
    def tangent_axes(self) -> tuple[int, int]:
        return tuple(a for a in range(3) if a != self.normal_axis)  # type: ignore[return-value]


class Inlet(Vent):
    """A supply inlet blowing clean air into the room at ``speed`` (m/s, normal to the face)."""

    speed: PositiveFloat


class Exhaust(Vent):
    """An exhaust; the outflow through all exhausts balances the supply, split by area."""


class Source(Strict):
    """A static volumetric source emitting ``rate`` (mass/s) between ``start`` and ``stop`` (s).

    The emission is spread uniformly over a cube of edge ``size`` (default: one cell) centred on
    (x, y, z), weighted by its overlap with each fluid cell; the emitted mass is exact.
    """

    x: Finite
    y: Finite
    z: Finite
    rate: PositiveFloat
    size: PositiveFloat | None = None
    start: NonNegativeFloat = 0.0
    stop: PositiveFloat | None = None

    @model_validator(mode="after")
    def _window(self) -> Source:
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must be after start ({self.start})")
        return self

    @property
    def position(self) -> tuple[float, float, float]:
        return (self.x, self.y, self.z)


class Plane(Strict):
    """The horizontal band [z_min, z_max] whose average is the analysed plane field."""

    z_min: NonNegativeFloat
    z_max: PositiveFloat

    @model_validator(mode="after")
    def _ordered(self) -> Plane:
        if not self.z_min < self.z_max:
            raise ValueError(f"z_min ({self.z_min}) must be below z_max ({self.z_max})")
        return self


class Probe(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    position: Vec3


class Timing(Strict):
    """Output times are ``output_interval, 2·output_interval, …, horizon`` (plus t = 0)."""

    horizon: PositiveFloat
    output_interval: PositiveFloat

    @model_validator(mode="after")
    def _whole(self) -> Timing:
        n = self.horizon / self.output_interval
        if abs(n - round(n)) > 1e-9 or round(n) < 1:
            raise ValueError(f"horizon ({self.horizon}) must be a whole multiple of "
                             f"output_interval ({self.output_interval})")
        return self

    @property
    def n_outputs(self) -> int:
        return int(round(self.horizon / self.output_interval))

    def output_times(self) -> list[float]:
        return [k * self.output_interval for k in range(self.n_outputs + 1)]


class Scenario(Strict):
    """One reference simulation: everything that determines its result."""

    name: str = "scenario"
    room: Room
    obstacles: list[Obstacle] = Field(default_factory=list)
    inlets: list[Inlet] = Field(min_length=1)
    exhausts: list[Exhaust] = Field(min_length=1)
    source: Source
    eddy_diffusivity: PositiveFloat = Field(description="Constant eddy diffusivity K (m²/s).")
    plane: Plane
    probes: list[Probe] = Field(default_factory=list)
    time: Timing

    @field_validator("probes")
    @classmethod
    def _unique_probes(cls, probes: list[Probe]) -> list[Probe]:
        names = [p.name for p in probes]
        if len(set(names)) != len(names):
            raise ValueError(f"probe names must be unique, got {names}")
        return probes

    @model_validator(mode="after")
    def _geometry(self) -> Scenario:
        size = self.room.size
        for i, ob in enumerate(self.obstacles):
            for axis, lo, hi, length in zip("xyz", ob.min, ob.max, size):
                if lo < 0 or hi > length:
                    raise ValueError(f"obstacles.{i}: extends outside the room along {axis}")
        for kind, vents in (("inlets", self.inlets), ("exhausts", self.exhausts)):
            for i, vent in enumerate(vents):
                for t, c, s in zip(vent.tangent_axes, vent.center, vent.size):
                    lo, hi = c - s / 2, c + s / 2
                    if lo < -1e-9 or hi > size[t] + 1e-9:
                        raise ValueError(f"{kind}.{i}: opening leaves the {vent.face} face "
                                         f"along {'xyz'[t]}")
                    if s < self.room.cell_size - 1e-9:
                        raise ValueError(f"{kind}.{i}.size: smaller than one cell "
                                         f"({self.room.cell_size} m)")
        vents = [("inlets", i, v) for i, v in enumerate(self.inlets)] + \
                [("exhausts", i, v) for i, v in enumerate(self.exhausts)]
        for a in range(len(vents)):
            for b in range(a + 1, len(vents)):
                (ka, ia, va), (kb, ib, vb) = vents[a], vents[b]
                if va.face == vb.face and all(
                        abs(ca - cb) < (sa + sb) / 2 - 1e-9
                        for ca, cb, sa, sb in zip(va.center, vb.center, va.size, vb.size)):
                    raise ValueError(f"{kb}.{ib}: opening overlaps {ka}.{ia} on face {va.face}")
        src = self.source
        for axis, v, length in zip("xyz", src.position, size):
            if not 0 < v < length:
                raise ValueError(f"source.{axis} ({v}) lies outside the room (0, {length})")
        for i, ob in enumerate(self.obstacles):
            if all(lo <= v <= hi for v, lo, hi in zip(src.position, ob.min, ob.max)):
                raise ValueError(f"source: position {src.position} lies inside obstacle "
                                 f"{i} ({ob.name!r})")
        if self.plane.z_max > size[2]:
            raise ValueError(f"plane.z_max ({self.plane.z_max}) is above the ceiling ({size[2]})")
        for i, p in enumerate(self.probes):
            for axis, v, length in zip("xyz", p.position, size):
                if not 0 <= v <= length:
                    raise ValueError(f"probes.{i} ({p.name}): {axis} = {v} outside the room")
        return self

    # ----------------------------------------------------------------- identity and parameters
    def canonical_json(self) -> str:
        """A stable serialisation: sorted keys, floats as repr; the basis of the case id."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def case_id(self) -> str:
        """Content hash of the scenario: equal scenarios share one id, so none is run twice."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def with_parameters(self, values: dict[str, float]) -> Scenario:
        """A copy with dotted-path fields replaced, e.g. ``{"source.x": 3.0, "inlets.0.speed": 1.2}``.

        The copy is validated again, so a value that makes the scenario invalid raises here.
        """
        data = self.model_dump(mode="json")  # tuples become lists, so every element is addressable
        for path, value in values.items():
            set_path(data, path, value)
        return Scenario.model_validate(data)

    def get_parameter(self, path: str) -> float:
        return float(get_path(self.model_dump(mode="json"), path))


def _walk(data: object, parts: list[str], path: str) -> object:
    for part in parts:
        if isinstance(data, list):
            if not part.isdigit() or int(part) >= len(data):
                raise KeyError(f"{path}: {part!r} is not an index of a list of {len(data)}")
            data = data[int(part)]
        elif isinstance(data, dict):
            if part not in data:
                raise KeyError(f"{path}: no field {part!r} (fields: {sorted(data)})")
            data = data[part]
        else:
            raise KeyError(f"{path}: cannot descend into a value at {part!r}")
    return data


def get_path(data: dict, path: str) -> object:
    return _walk(data, path.split("."), path)


def set_path(data: dict, path: str, value: object) -> None:
    parts = path.split(".")
    parent = _walk(data, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, list):
        if not last.isdigit() or int(last) >= len(parent):
            raise KeyError(f"{path}: {last!r} is not an index of a list of {len(parent)}")
        parent[int(last)] = value
    elif isinstance(parent, dict):
        if last not in parent:
            raise KeyError(f"{path}: no field {last!r} (fields: {sorted(parent)})")
        parent[last] = value
    else:
        raise KeyError(f"{path}: cannot set a field on a {type(parent).__name__}")


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from a TOML file; errors name the file and the field."""
    path = Path(path)
    with path.open("rb") as f:
        data = tomllib.load(f)
    return Scenario.model_validate(data)
