"""The ``command`` simulator: any external program a lab has, driven through files in a per-case directory.

For each case, in a fresh directory (the campaign's ``runs/<case id>/``, or a temporary one):

1. ``scenario.json`` is written: the scenario (``Scenario.model_dump``) plus ``derived`` (output times,
   the plane grid's shape, cell size and origin, probe names);
2. each template in ``templates`` (destination name → template file) is rendered into the directory:
   ``{{ source.x }}``, ``{{ room.size.0 }}`` … are the scenario's dotted fields, ``{{ case_dir }}`` and
   ``{{ horizon }}``, ``{{ output_times }}`` (space separated) the derived values; an unknown name is
   an error naming the template and the name, before anything runs;
3. ``command`` runs there (the same names rendered in each argument), with ``env``, ``timeout_seconds``
   and its stdout and stderr in ``log.txt`` (:func:`closedloop.simulators.external.run_tool`); a retry
   clears the directory but for ``log.txt``, which keeps every attempt;
4. ``reader`` reads ``output`` (relative to the directory) as a plane series:

   - ``npz``: arrays ``times`` (T,), ``plane`` (T, nx, ny); optional ``plane_mask`` (nx, ny) of 0/1,
     ``probe:NAME`` (T,) for the scenario's probes, ``mass_in_domain``, ``mass_emitted``, ``mass_exhausted`` (T,);
   - ``csv``: a header ``time,i,j,c`` and one row per plane cell and output time (i along x, j along y,
     every cell of the grid at every time, any order); probes and masses from an optional
     ``series_output`` CSV with a ``time`` column and columns named as in the NPZ.

   ``times`` must be the scenario's output times (to 10⁻⁶ s) and the plane the scenario's plane grid
   (``derived.plane_shape``); the plane mask defaults to the columns with fluid in the band, as ours.
   A mass series that is not given is all NaN and ``extra["mass_reported"]`` lists those that are.

A non-zero exit, a timeout, a missing output or one that does not fit the contract raises
:class:`~closedloop.simulators.external.SimulatorFailed` with the reason and the log's tail: the
campaign retries it, then records the case ``failed``; files of other cases are untouched.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from closedloop.schema import Strict
from closedloop.simulators.external import SimulatorFailed, log_tail, run_tool
from closedloop.simulators.geometry import room_geometry
from closedloop.simulators.plane import plane_reduction
from closedloop.simulators.reference import ProgressFn, SimulationResult
from closedloop.simulators.scenario import Scenario, get_path

MASSES = ("mass_in_domain", "mass_emitted", "mass_exhausted")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


class CommandSettings(Strict):
    """``[simulation.command]``: the program, its inputs and how its output is read."""

    command: list[str] = Field(min_length=1, description="argv of the program; {{ name }} placeholders allowed")
    templates: dict[str, Path] = Field(default_factory=dict,
                                       description="file to write in the case directory -> template file")
    reader: Literal["npz", "csv"] = "npz"
    output: str = Field(default="plane_series.npz", min_length=1, description="the plane series, in the case directory")
    series_output: str | None = Field(default=None, description="csv reader only: probes and masses per time")
    timeout_seconds: float | None = Field(default=None, gt=0, description="an attempt running longer is killed")
    env: dict[str, str] = Field(default_factory=dict, description="added to the environment of the program")
    version: str = Field(default="unversioned", min_length=1,
                         description="the program's version, declared by the lab; it enters the case id")

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: dict[str, Path]) -> dict[str, Path]:
        for dest, source in value.items():
            if Path(dest).is_absolute() or ".." in Path(dest).parts:
                raise ValueError(f"templates: destination {dest!r} must be a relative path inside the case directory")
            if not Path(source).is_file():
                raise ValueError(f"templates.{dest}: template file {str(source)!r} not found")
        return value

    @field_validator("output", "series_output")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (Path(value).is_absolute() or ".." in Path(value).parts):
            raise ValueError(f"{value!r} must be a relative path inside the case directory")
        return value


def derived(scenario: Scenario) -> dict[str, Any]:
    """What a program needs beyond the scenario's own fields: output times, the plane grid, probe names."""
    shape = list(scenario.room.shape)
    return {"output_times": scenario.time.output_times(), "horizon": scenario.time.horizon,
            "plane_shape": shape[:2], "cell_size": list(scenario.room.spacing), "grid_shape": shape,
            "probes": [p.name for p in scenario.probes]}


def render(text: str, values: dict[str, Any], where: str) -> str:
    """``text`` with each ``{{ name }}`` replaced by ``values`` (dotted paths into nested dicts and lists)."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        try:
            value = get_path(values, name)
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValueError(f"{where}: unknown placeholder {{{{ {name} }}}}") from None
        if isinstance(value, (list, tuple)):
            return " ".join(repr(v) if isinstance(v, float) else str(v) for v in value)
        return repr(value) if isinstance(value, float) else str(value)
    return PLACEHOLDER.sub(one, text)


class CommandSimulator:
    """An external program behind the ``Simulator`` interface (see the module docstring for the contract)."""

    name = "command"

    def __init__(self, settings: CommandSettings) -> None:
        self.settings = settings

    def version(self) -> str:
        return self.settings.version

    def identity(self) -> dict[str, Any]:
        s = self.settings
        templates = {dest: Path(src).read_text() for dest, src in sorted(s.templates.items())}
        return {"simulator": self.name, "command": s.command, "version": s.version, "reader": s.reader,
                "templates": templates}

    def simulate(self, scenario: Scenario, *, device: str | torch.device = "auto",
                 dtype: torch.dtype = torch.float64, progress: ProgressFn | None = None,
                 max_memory_gb: float | None = None, max_cells: int | None = None,
                 workdir: Path | None = None) -> SimulationResult:
        s = self.settings
        temporary = workdir is None
        case_dir = Path(tempfile.mkdtemp(prefix="closedloop-command-")) if temporary else Path(workdir)
        if case_dir.exists() and not temporary:
            clear_attempt(case_dir)
        case_dir.mkdir(parents=True, exist_ok=True)
        info = derived(scenario)
        values = {**scenario.model_dump(mode="json"), **info, "case_dir": str(case_dir.resolve())}
        rendered = {dest: render(Path(src).read_text(), values, f"simulation.command.templates.{dest}")
                    for dest, src in s.templates.items()}
        argv = [render(arg, values, "simulation.command.command") for arg in s.command]
        (case_dir / "scenario.json").write_text(json.dumps({**scenario.model_dump(mode="json"), "derived": info},
                                                           indent=1))
        for dest, text in rendered.items():
            (case_dir / dest).parent.mkdir(parents=True, exist_ok=True)
            (case_dir / dest).write_text(text)
        log = case_dir / "log.txt"
        t0 = time.perf_counter()
        run = run_tool(argv, case_dir, log, env=s.env, timeout=s.timeout_seconds, what=f"simulation.command {argv[0]}")
        try:
            series = read_plane_series(case_dir, s, scenario)
        except SimulatorFailed as err:
            raise SimulatorFailed(f"{err}; log {log}:\n{log_tail(log)}") from None
        if progress is not None:
            progress(scenario.time.horizon, scenario.time.horizon)
        result = _result(scenario, series, run.cpu_seconds, time.perf_counter() - t0, self.version())
        result.extra["case_dir"] = None if temporary else str(case_dir)
        if temporary:
            shutil.rmtree(case_dir, ignore_errors=True)
        return result


def clear_attempt(case_dir: Path) -> None:
    """Remove an earlier attempt's files, all but ``log.txt``: every attempt starts afresh (a stale output
    is never read as a new one) and the log keeps every attempt, one after another."""
    for entry in case_dir.iterdir():
        if entry.name == "log.txt":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def read_plane_series(case_dir: Path, settings: CommandSettings, scenario: Scenario) -> dict[str, np.ndarray]:
    """The arrays of the output contract, checked against the scenario; :class:`SimulatorFailed` if not."""
    path = case_dir / settings.output
    if not path.is_file():
        raise SimulatorFailed(f"simulation.command: the program wrote no {settings.output}")
    try:
        arrays = _read_npz(path) if settings.reader == "npz" else _read_csv(path, scenario)
        if settings.series_output is not None:
            arrays.update(_read_series_csv(case_dir / settings.series_output))
    except SimulatorFailed:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the program's fault, reported as such
        raise SimulatorFailed(f"simulation.command: cannot read {settings.output} ({type(err).__name__}: {err})") from None
    check_series(arrays, scenario)
    return arrays


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: np.asarray(data[k], dtype=np.float64) for k in data.files}


def _read_csv(path: Path, scenario: Scenario) -> dict[str, np.ndarray]:
    table = np.genfromtxt(path, delimiter=",", names=True, dtype=np.float64)
    names = table.dtype.names or ()
    if tuple(names[:4]) != ("time", "i", "j", "c"):
        raise SimulatorFailed(f"simulation.command: {path.name} header must be time,i,j,c (got {','.join(names)})")
    nx, ny = derived(scenario)["plane_shape"]
    times = np.unique(table["time"])
    plane = np.full((len(times), nx, ny), np.nan)
    i, j = table["i"].astype(int), table["j"].astype(int)
    if (i < 0).any() or (i >= nx).any() or (j < 0).any() or (j >= ny).any():
        raise SimulatorFailed(f"simulation.command: {path.name} has cells outside the {nx} × {ny} plane grid")
    plane[np.searchsorted(times, table["time"]), i, j] = table["c"]
    if np.isnan(plane).any():
        raise SimulatorFailed(f"simulation.command: {path.name} misses {int(np.isnan(plane).sum())} plane values")
    return {"times": times, "plane": plane}


def _read_series_csv(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise SimulatorFailed(f"simulation.command: the program wrote no {path.name}")
    table = np.genfromtxt(path, delimiter=",", names=True, dtype=np.float64, deletechars="")
    return {name: np.atleast_1d(table[name]) for name in (table.dtype.names or ()) if name != "time"}


def check_series(arrays: dict[str, np.ndarray], scenario: Scenario) -> None:
    """The contract: times equal to the output times, the plane on the plane grid, series of length T, finite."""
    for key in ("times", "plane"):
        if key not in arrays:
            raise SimulatorFailed(f"simulation.command: the output has no {key!r} array")
    expected = np.asarray(scenario.time.output_times())
    times = arrays["times"]
    if times.shape != expected.shape or not np.allclose(times, expected, rtol=0, atol=1e-6):
        raise SimulatorFailed(f"simulation.command: times must be the scenario's {len(expected)} output times "
                              f"{expected[0]:g} … {expected[-1]:g} s (got {times.size} values)")
    shape = (len(expected), *derived(scenario)["plane_shape"])
    if arrays["plane"].shape != shape:
        raise SimulatorFailed(f"simulation.command: plane must have shape {shape} (T, nx, ny), "
                              f"got {arrays['plane'].shape}")
    for name, values in arrays.items():
        if name.startswith("probe:") or name in MASSES:
            if values.shape != expected.shape:
                raise SimulatorFailed(f"simulation.command: {name} must have {len(expected)} values, got {values.size}")
        if name != "plane_mask" and not np.isfinite(values).all():
            raise SimulatorFailed(f"simulation.command: {name} holds {int((~np.isfinite(values)).sum())} "
                                  f"non-finite values")


def _result(scenario: Scenario, arrays: dict[str, np.ndarray], cpu: float, wall: float,
            version: str) -> SimulationResult:
    if "plane_mask" in arrays:
        mask = torch.as_tensor(arrays["plane_mask"]) > 0.5
    else:
        mask = plane_reduction(scenario, room_geometry(scenario)).mask.clone()
    t = len(arrays["times"])
    masses = {m: torch.as_tensor(arrays[m]) if m in arrays else torch.full((t,), float("nan")) for m in MASSES}
    probes = {p.name: torch.as_tensor(arrays[f"probe:{p.name}"]) for p in scenario.probes
              if f"probe:{p.name}" in arrays}
    return SimulationResult(
        times=torch.as_tensor(arrays["times"]), plane=torch.as_tensor(arrays["plane"]), plane_mask=mask,
        probes=probes, mass_in_domain=masses["mass_in_domain"], mass_emitted=masses["mass_emitted"],
        mass_exhausted=masses["mass_exhausted"], steps=0, dt=0.0, wall_seconds=wall, flow_seconds=0.0,
        device="external", dtype="float64", cpu_seconds=cpu, simulator="command", simulator_version=version,
        extra={"grid_shape": derived(scenario)["grid_shape"], "mass_reported": [m for m in MASSES if m in arrays],
               "probes_reported": sorted(probes)})
