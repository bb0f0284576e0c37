"""Scenarios: a room, its obstacles, supply inlets and exhausts, a source, the plane and probes.

Pydantic models, loadable from TOML. Every check that can be made without compute is made
here, so that a scenario that cannot be valid fails before any simulation starts, with the
field named in the message.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from closedloop.physics.steppers import SSP_RK2_STAGES, Stepper, make_stepper
from closedloop.schema import Strict, read_toml
from closedloop.simulators.scenario_source import Finite, NonNegativeFloat, PositiveFloat, Source, Waypoint  # noqa: F401 - re-exported

Vec3 = tuple[Finite, Finite, Finite]
Vec2 = tuple[Finite, Finite]
Face = Literal["x-", "x+", "y-", "y+", "z-", "z+"]

FACE_AXES = {"x": 0, "y": 1, "z": 2}


class PartlyCovered(UserWarning):
    """An inlet or exhaust partly covered by obstacles: accepted, with the covered fraction said."""


class Room(Strict):
    """A rectangular room [0, Lx] × [0, Ly] × [0, Lz] meshed with cells of ``cell_size``.

    ``cell_size`` is one edge (cubes) or (dx, dy, dz); the plane grid takes (dx, dy).
    """

    size: tuple[PositiveFloat, PositiveFloat, PositiveFloat]
    cell_size: PositiveFloat | tuple[PositiveFloat, PositiveFloat, PositiveFloat]

    @model_validator(mode="after")
    def _cells_fit(self) -> Room:
        for axis, length, h in zip("xyz", self.size, self.spacing):
            n = length / h
            if abs(n - round(n)) > 1e-6:
                raise ValueError(f"size along {axis} ({length} m) is not a whole number of "
                                 f"cell_size ({h} m)")
            if round(n) < 2:
                raise ValueError(f"size along {axis} holds fewer than 2 cells of cell_size")
        return self

    @property
    def spacing(self) -> tuple[float, float, float]:
        h = self.cell_size
        return (h, h, h) if isinstance(h, (int, float)) else tuple(h)  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(round(s / h)) for s, h in zip(self.size, self.spacing))  # type: ignore[return-value]


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
    """A supply inlet blowing clean air into the room at ``speed`` (m/s).

    ``direction`` (optional, any length; default: straight in along the face normal) tilts the
    jet, as a swirl or slot diffuser does: the normal component speed·(d̂·n̂_in) carries the
    volume flow, the tangential one enters the Navier–Stokes momentum balance.
    """

    speed: PositiveFloat
    direction: Vec3 | None = None

    @model_validator(mode="after")
    def _into_room(self) -> Inlet:
        if self.direction is not None:
            norm = sum(d * d for d in self.direction) ** 0.5
            if norm == 0:
                raise ValueError("direction: must be a non-zero vector")
            inward = 1.0 if self.face[1] == "-" else -1.0
            if self.direction[self.normal_axis] * inward / norm < 0.1:
                raise ValueError(f"direction: {self.direction} does not point into the room through face "
                                 f"{self.face} (needs an inward normal component ≥ 0.1 of its length)")
        return self

    def velocity_vector(self) -> tuple[float, float, float]:
        """The inflow velocity (m/s) in x, y, z."""
        inward = 1.0 if self.face[1] == "-" else -1.0
        if self.direction is None:
            v = [0.0, 0.0, 0.0]
            v[self.normal_axis] = inward * self.speed
            return tuple(v)  # type: ignore[return-value]
        norm = sum(d * d for d in self.direction) ** 0.5
        return tuple(self.speed * d / norm for d in self.direction)  # type: ignore[return-value]


class Exhaust(Vent):
    """An exhaust; the outflow through all exhausts balances the supply, split by area."""


def vent_coverage(vent: Vent, room: Room, obstacles: list[Obstacle]) -> tuple[int, int]:
    """(faces of the opening, faces whose cell behind is solid), by the rules of the grid: a face is
    in the opening when its centre lies in [lo, hi) (``geometry.vent_faces``), a cell is solid when
    its centre lies in an obstacle (``geometry.room_geometry``). No grid is allocated."""
    axis, (t0, t1) = vent.normal_axis, vent.tangent_axes
    h, n = room.spacing, room.shape
    depth = 0.5 * h[axis] if vent.face[1] == "-" else (n[axis] - 1 + 0.5) * h[axis]
    ranges = []
    for t, c, size in zip((t0, t1), vent.center, vent.size):
        centres = [(i + 0.5) * h[t] for i in range(n[t])]
        ranges.append([x for x in centres if c - size / 2 - 1e-9 <= x < c + size / 2 - 1e-9])
    blockers = [ob for ob in obstacles if ob.min[axis] <= depth <= ob.max[axis]]
    covered = sum(1 for a in ranges[0] for b in ranges[1]
                  if any(ob.min[t0] <= a <= ob.max[t0] and ob.min[t1] <= b <= ob.max[t1] for ob in blockers))
    return len(ranges[0]) * len(ranges[1]), covered


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
    """Output times are ``output_interval, 2·output_interval, …, horizon`` (plus t = 0).

    ``snapshots``: output times at which the full 3D field is kept as well.
    """

    horizon: PositiveFloat
    output_interval: PositiveFloat
    snapshots: list[NonNegativeFloat] = Field(default_factory=list)

    @model_validator(mode="after")
    def _whole(self) -> Timing:
        n = self.horizon / self.output_interval
        if abs(n - round(n)) > 1e-9 or round(n) < 1:
            raise ValueError(f"horizon ({self.horizon}) must be a whole multiple of "
                             f"output_interval ({self.output_interval})")
        return self

    @model_validator(mode="after")
    def _snapshots_on_outputs(self) -> Timing:
        for s in self.snapshots:
            k = s / self.output_interval
            if abs(k - round(k)) > 1e-9 or s > self.horizon + 1e-9:
                raise ValueError(f"snapshots: {s} s is not an output time (multiples of "
                                 f"output_interval up to horizon)")
        return self

    @property
    def n_outputs(self) -> int:
        return int(round(self.horizon / self.output_interval))

    def output_times(self) -> list[float]:
        return [k * self.output_interval for k in range(self.n_outputs + 1)]


class Numerics(Strict):
    """Discretisation of the transport equation.

    ``tvd``: MUSCL with the van Leer limiter (second order where smooth, positive);
    ``upwind``: first order. ``ssp_rk2``: second-order strong-stability-preserving Runge–Kutta with
    ``stages`` = s evaluations a step, SSPRK(s,2): its step is s − 1 times forward Euler's positive one
    (s = 2 is Heun; None takes ``SSP_RK2_STAGES``); ``euler``: forward Euler (1 stage). ``safety``
    scales the positivity-preserving step limit (≤ 1).
    """

    advection: Literal["tvd", "upwind"] = "tvd"
    time_stepping: Literal["ssp_rk2", "euler"] = "ssp_rk2"
    stages: int | None = Field(default=None, ge=1, le=32)
    safety: Annotated[float, Field(gt=0, le=1)] = 0.9

    @model_validator(mode="after")
    def _stages_fit_the_scheme(self) -> Numerics:
        self.stepper()  # a ValueError naming ``stages`` when the count does not fit the scheme
        return self

    def stepper(self) -> Stepper:
        """The scheme as a ``physics.steppers.Stepper`` (its step, stage times and SSP coefficient)."""
        default = SSP_RK2_STAGES if self.time_stepping == "ssp_rk2" else None
        return make_stepper(self.time_stepping, default if self.stages is None else self.stages)


class FlowModel(Strict):
    """The steady velocity field: ``potential`` (irrotational, fast) or ``navier_stokes``
    (steady incompressible RANS with a mixing-length eddy viscosity: jets, wakes, recirculation)."""

    model: Literal["potential", "navier_stokes"] = "potential"
    max_iterations: int = Field(default=3000, ge=1)
    mixing_length: PositiveFloat | None = Field(default=None, description="Cap on the mixing length (m)")


class Diffusivity(Strict):
    """K = ``constant`` (the scenario's eddy_diffusivity) or, with ``eddy_viscosity``,
    K = eddy_diffusivity + ν_t / ``turbulent_schmidt`` from the Navier–Stokes flow."""

    model: Literal["constant", "eddy_viscosity"] = "constant"
    turbulent_schmidt: PositiveFloat = 0.7


class Scenario(Strict):
    """One reference simulation: everything that determines its result."""

    name: str = "scenario"
    room: Room
    obstacles: list[Obstacle] = Field(default_factory=list)
    inlets: list[Inlet] = Field(min_length=1)
    exhausts: list[Exhaust] = Field(min_length=1)
    source: Source
    eddy_diffusivity: PositiveFloat = Field(description="Constant (or background) eddy diffusivity K (m²/s).")
    diffusivity: Diffusivity = Diffusivity()
    flow: FlowModel = FlowModel()
    numerics: Numerics = Numerics()
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
                    if s < self.room.spacing[t] - 1e-9:
                        raise ValueError(f"{kind}.{i}.size: smaller than one cell "
                                         f"({self.room.spacing[t]} m along {'xyz'[t]})")
        vents = [("inlets", i, v) for i, v in enumerate(self.inlets)] + \
                [("exhausts", i, v) for i, v in enumerate(self.exhausts)]
        for kind, i, vent in vents:
            faces, covered = vent_coverage(vent, self.room, self.obstacles)
            if faces and covered == faces:
                raise ValueError(f"{kind}.{i}: its opening on {vent.face} is covered by obstacles (all {faces} of "
                                 f"its cell faces open onto solid cells); no air can pass")
            if covered:
                warnings.warn(f"{kind}.{i}: {covered / faces:.0%} of its opening on {vent.face} is covered by "
                              f"obstacles ({covered} of {faces} cell faces); only the rest passes air",
                              PartlyCovered, stacklevel=2)
        for a in range(len(vents)):
            for b in range(a + 1, len(vents)):
                (ka, ia, va), (kb, ib, vb) = vents[a], vents[b]
                if va.face == vb.face and all(
                        abs(ca - cb) < (sa + sb) / 2 - 1e-9
                        for ca, cb, sa, sb in zip(va.center, vb.center, va.size, vb.size)):
                    raise ValueError(f"{kb}.{ib}: opening overlaps {ka}.{ia} on face {va.face}")
        src = self.source
        where = "source" if not src.is_moving else "source.trajectory"
        for t, *pos in src.path_samples(0.5 * min(self.room.spacing)):
            at = "" if not src.is_moving else f" at t = {t:g} s"
            for axis, v, length in zip("xyz", pos, size):
                if not 0 < v < length:
                    name = f"source.{axis}" if not src.is_moving else where
                    raise ValueError(f"{name} ({axis} = {v:g}{at}) lies outside the room (0, {length})")
            for i, ob in enumerate(self.obstacles):
                if all(lo <= v <= hi for v, lo, hi in zip(pos, ob.min, ob.max)):
                    raise ValueError(f"{where}: position {tuple(round(p, 3) for p in pos)}{at} lies inside "
                                     f"obstacle {i} ({ob.name!r})")
        if self.diffusivity.model == "eddy_viscosity" and self.flow.model != "navier_stokes":
            raise ValueError("diffusivity.model: 'eddy_viscosity' needs flow.model = 'navier_stokes' "
                             "(potential flow has no eddy viscosity)")
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

    def case_id(self, producer: Mapping[str, Any] | None = None) -> str:
        """Content hash of the scenario and of what simulates it: equal pairs share one id, so none is run
        twice. ``producer`` is a simulator's ``identity()`` (name, version, the settings that change its
        numbers); None, the built-in reference, keeps the scenario's own hash."""
        text = self.canonical_json()
        if producer is not None:
            text += "|" + json.dumps(dict(producer), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

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
    """Read a scenario from a TOML file; errors name the file (:class:`UnreadableFile`) or the field."""
    return Scenario.model_validate(read_toml(path))
