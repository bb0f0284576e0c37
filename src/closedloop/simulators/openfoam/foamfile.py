"""The OpenFOAM ASCII file format: dictionaries written from Python values, fields and sets read back.

Writing: a Python dict becomes ``key value;`` entries (nested dicts are sub-dictionaries, lists and
tuples are ``( … )`` lists, bools ``true``/``false``, floats ``repr``); a :class:`Raw` string is written
verbatim. Reading: ``internalField`` of a volScalarField / volVectorField (``uniform`` or ``nonuniform
List<…> N ( … )``) → a numpy array (N,) or (N, 3), and one patch's ``value`` likewise.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from closedloop.simulators.external import SimulatorFailed

HEADER = """/*--------------------------------*- C++ -*----------------------------------*\\
  written by closedloop (simulators.openfoam)
\\*---------------------------------------------------------------------------*/
"""


class Raw(str):
    """Text written into a dictionary as it is (a dimension set, a keyword list)."""


class FoamFormatError(SimulatorFailed):
    """An OpenFOAM output file that is missing, truncated or not what was expected; names the file.

    A failed simulation (retried, then recorded ``failed``), not bad input."""


def format_value(value: Any, indent: int = 0) -> str:
    pad = "    " * indent
    if isinstance(value, dict):
        inner = "".join(format_entry(k, v, indent + 1) for k, v in value.items())
        return f"\n{pad}{{\n{inner}{pad}}}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, dict) for v in value):
            inner = "".join(f"{pad}    {format_value(v, indent + 1).strip()}\n" for v in value)
            return f"\n{pad}(\n{inner}{pad})"
        return "(" + " ".join(format_value(v, indent) for v in value) + ")"
    if isinstance(value, float):
        return repr(float(value))  # a numpy float's repr is "np.float64(…)"
    return str(value)


def format_entry(key: str, value: Any, indent: int = 0) -> str:
    pad = "    " * indent
    text = format_value(value, indent)
    if isinstance(value, dict):
        return f"{pad}{key}{text}\n"
    if text.startswith("\n"):
        return f"{pad}{key}{text};\n"
    return f"{pad}{key} {text};\n"


def foam_text(cls: str, obj: str, body: dict[str, Any], location: str | None = None) -> str:
    """A whole OpenFOAM file: the FoamFile header, then ``body``'s entries."""
    head: dict[str, Any] = {"version": 2.0, "format": "ascii", "class": cls, "object": obj}
    if location is not None:
        head["location"] = f'"{location}"'
    return HEADER + format_entry("FoamFile", head) + "\n" + "".join(format_entry(k, v) for k, v in body.items())


def write_foam(path: Path, cls: str, body: dict[str, Any], location: str | None = None) -> Path:
    """Write ``body`` as the OpenFOAM file ``path`` (its name is the object name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(foam_text(cls, path.name, body, location))
    return path


def write_cell_set(path: Path, cells: np.ndarray) -> Path:
    """A cellSet file: the labels of ``cells`` (int array, any order; written sorted)."""
    labels = np.unique(np.asarray(cells, dtype=np.int64))
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {"version": 2.0, "format": "ascii", "class": "cellSet", "location": '"constant/polyMesh/sets"',
            "object": path.name}
    path.write_text(HEADER + format_entry("FoamFile", head) + f"\n{len(labels)}\n(\n"
                    + "\n".join(map(str, labels.tolist())) + "\n)\n")
    return path


_NUMBER = r"[-+0-9.eEinfINFnaN]+"


def _parse_values(text: str, start: int, path: Path, what: str) -> tuple[np.ndarray, int]:
    """The value after ``start``: ``uniform v`` or ``nonuniform List<T> N (…)``; returns (array, end)."""
    m = re.compile(r"\s*(uniform|nonuniform)\s+").match(text, start)
    if m is None:
        raise FoamFormatError(f"{path}: {what} is neither uniform nor nonuniform")
    pos = m.end()
    if m.group(1) == "uniform":
        v = re.compile(rf"\(\s*({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s*\)|({_NUMBER})").match(text, pos)
        if v is None:
            raise FoamFormatError(f"{path}: {what}: unreadable uniform value")
        vals = [float(x) for x in v.groups()[:3]] if v.group(1) else [float(v.group(4))]
        return np.array(vals), v.end()
    h = re.compile(r"List<(scalar|vector)>\s*(\d+)\s*\(").match(text, pos)
    if h is None:
        raise FoamFormatError(f"{path}: {what}: expected 'List<scalar|vector> N ('")
    n, kind = int(h.group(2)), h.group(1)
    end = _closing(text, h.end()) if kind == "vector" else text.find(")", h.end())
    if end < 0:
        raise FoamFormatError(f"{path}: {what}: the list of {n} values is not closed (truncated file?)")
    body = text[h.end():end]
    if kind == "vector":
        body = body.replace("(", " ").replace(")", " ")
    try:
        arr = np.array(body.split(), dtype=np.float64)
    except ValueError as err:
        raise FoamFormatError(f"{path}: {what}: a value is not a number ({err})") from None
    width = 3 if kind == "vector" else 1
    if arr.size != n * width:
        raise FoamFormatError(f"{path}: {what}: expected {n} {kind}s, read {arr.size // width}")
    return (arr.reshape(n, 3) if width == 3 else arr), end + 1


def _closing(text: str, start: int) -> int:
    """The index of the ``)`` closing a list opened just before ``start`` (-1 when there is none)."""
    depth = 1
    for m in re.compile(r"[()]").finditer(text, start):
        depth += 1 if m.group() == "(" else -1
        if depth == 0:
            return m.start()
    return -1


def read_internal_field(path: Path, n_cells: int | None = None) -> np.ndarray:
    """The ``internalField`` of an ASCII vol field file: (N,) scalars or (N, 3) vectors.

    A ``uniform`` value is broadcast to ``n_cells`` (required then)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise FoamFormatError(f"{path}: cannot be read ({err.strerror or err})") from None
    m = re.search(r"^internalField\b", text, re.M)
    if m is None:
        raise FoamFormatError(f"{path}: no internalField")
    arr, _ = _parse_values(text, m.end(), path, "internalField")
    if re.compile(r"\s*uniform").match(text, m.end()):
        if n_cells is None:
            raise FoamFormatError(f"{path}: internalField is uniform and no cell count was given")
        arr = np.broadcast_to(arr if arr.size == 3 else arr[0], (n_cells, 3) if arr.size == 3 else (n_cells,)).copy()
    if n_cells is not None and arr.shape[0] != n_cells:
        raise FoamFormatError(f"{path}: internalField has {arr.shape[0]} values, the mesh {n_cells} cells")
    return arr


def read_patch_value(path: Path, patch: str, n_faces: int | None = None) -> np.ndarray:
    """The ``value`` entry of ``patch`` in an ASCII field file's boundaryField (a ``uniform`` value is
    broadcast to ``n_faces`` when given)."""
    text = path.read_text()
    m = re.search(rf"^\s*{re.escape(patch)}\s*\n\s*\{{", text[text.find("boundaryField"):], re.M)
    if m is None:
        raise FoamFormatError(f"{path}: no patch {patch!r} in boundaryField")
    start = text.find("boundaryField") + m.end()
    v = re.compile(r"[^}]*?\bvalue\b").match(text, start)
    if v is None:
        raise FoamFormatError(f"{path}: patch {patch!r} has no value")
    arr, _ = _parse_values(text, v.end(), path, f"{patch}.value")
    if n_faces is not None and re.compile(r"\s*uniform").match(text, v.end()):
        arr = np.broadcast_to(arr if arr.size == 3 else arr[0], (n_faces, 3) if arr.size == 3 else (n_faces,)).copy()
    return arr


def read_table(path: Path) -> np.ndarray:
    """A function object's ``.dat`` table (``#`` comment lines, whitespace columns) → (rows, cols)."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError as err:
        raise FoamFormatError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        rows = [[float(x) for x in ln.replace("(", " ").replace(")", " ").split()] for ln in lines]
    except ValueError as err:
        raise FoamFormatError(f"{path}: a value is not a number ({err})") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise FoamFormatError(f"{path}: empty or ragged table")
    return np.array(rows)
