"""The room as an OpenFOAM mesh: the same Cartesian grid as the reference's, cell for cell.

1. ``blockMesh``: one hex block [0, Lx] × [0, Ly] × [0, Lz] of (nx, ny, nz) cells (the scenario's
   ``room.shape``), every box face in the wall patch ``walls``, plus an empty wall patch ``obstacles``.
2. Obstacles: the fluid cells, decided by the reference's own rule (``geometry.room_geometry``: a cell
   is solid when its centre lies in an obstacle), are written as the cellSet ``fluid`` by label
   (blockMesh numbers a single block's cells x fastest: ``i + nx (j + ny k)``), and ``subsetMesh fluid
   -patch obstacles`` keeps them; the faces it exposes become the ``obstacles`` wall patch.
3. Vents: vent ``k`` becomes the patch ``inlet_k`` / ``exhaust_k`` made of the ``walls`` faces on its
   room face whose centres lie in the opening by the reference's rule (``geometry.vent_faces``:
   tangential centre in [lo, hi), cell behind fluid). ``topoSet`` selects them with a box that spans
   exactly those face centres, padded by a quarter cell (no neighbouring centre is nearer than half a
   cell), intersected with ``walls``; ``createPatch`` moves them into their patch. Faces behind which a
   cell was removed no longer exist, so a partly covered vent keeps only its open faces, as ours does.
   createPatch drops patches without faces; a face-less patch ``reference`` is then appended to the
   boundary file (where the potential-flow pressure is fixed: see ``fields``).
4. ``postProcess -func writeCellCentres / writeCellVolumes``: each OpenFOAM cell is matched to its
   grid index (i, j, k) = ⌊C / h⌋ (:class:`CellMap`), and the boundary file gives each patch's faces.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from closedloop.simulators.geometry import RoomGeometry, room_geometry, vent_faces
from closedloop.simulators.openfoam.foamfile import FoamFormatError, Raw, read_internal_field, write_cell_set, write_foam
from closedloop.simulators.openfoam.runner import Tools
from closedloop.simulators.scenario import Scenario, Vent


@dataclass(frozen=True)
class CellMap:
    """OpenFOAM cell n ↔ grid cell ``index[n]`` (flat, C order over (nx, ny, nz)); ``volume[n]`` (m³)."""

    shape: tuple[int, int, int]
    index: np.ndarray  # (N,) int64
    volume: np.ndarray  # (N,)
    patches: dict[str, int]  # patch name -> number of faces

    @property
    def n_cells(self) -> int:
        return int(self.index.size)

    def to_grid(self, values: np.ndarray) -> torch.Tensor:
        """A cell field (N,) → (nx, ny, nz) float64, zero in solid cells."""
        out = np.zeros(int(np.prod(self.shape)))
        out[self.index] = values
        return torch.from_numpy(out.reshape(self.shape))

    def labels(self, grid_mask: torch.Tensor) -> np.ndarray:
        """OpenFOAM labels of the cells where ``grid_mask`` (nx, ny, nz) is true."""
        flat = grid_mask.reshape(-1).numpy()
        return np.nonzero(flat[self.index])[0]


def vent_patches(scenario: Scenario) -> list[tuple[str, Vent]]:
    """(patch name, vent): ``inlet_0``, ``inlet_1``, …, ``exhaust_0``, …"""
    return ([(f"inlet_{i}", v) for i, v in enumerate(scenario.inlets)]
            + [(f"exhaust_{i}", v) for i, v in enumerate(scenario.exhausts)])


def block_mesh_dict(scenario: Scenario) -> dict:
    lx, ly, lz = scenario.room.size
    nx, ny, nz = scenario.room.shape
    verts = [(0, 0, 0), (lx, 0, 0), (lx, ly, 0), (0, ly, 0), (0, 0, lz), (lx, 0, lz), (lx, ly, lz), (0, ly, lz)]
    return {
        "convertToMeters": 1,
        "vertices": Raw("(\n" + "\n".join(f"    ({x!r} {y!r} {z!r})" for x, y, z in
                                           [tuple(float(c) for c in v) for v in verts]) + "\n)"),
        "blocks": Raw(f"(\n    hex (0 1 2 3 4 5 6 7) ({nx} {ny} {nz}) simpleGrading (1 1 1)\n)"),
        "edges": Raw("()"),
        "boundary": Raw("(\n    walls\n    {\n        type wall;\n        faces\n        (\n"
                        "            (0 4 7 3)\n            (1 2 6 5)\n            (0 1 5 4)\n"
                        "            (3 7 6 2)\n            (0 3 2 1)\n            (4 5 6 7)\n        );\n    }\n"
                        "    obstacles\n    {\n        type wall;\n        faces ();\n    }\n)"),
        "mergePatchPairs": Raw("()"),
    }


def vent_face_box(vent: Vent, geometry: RoomGeometry) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The box (min, max) holding exactly the centres of ``vent``'s open faces (None: no open face)."""
    grid = geometry.grid
    mask = vent_faces(vent, geometry)
    axis = vent.normal_axis
    side = 0 if vent.face[1] == "-" else grid.shape[axis]
    face = mask.select(axis, side)
    if not face.any():
        return None
    lo, hi = [0.0] * 3, [0.0] * 3
    plane = side * grid.spacing[axis]
    lo[axis], hi[axis] = plane - grid.spacing[axis] / 4, plane + grid.spacing[axis] / 4
    for dim, t in enumerate(vent.tangent_axes):
        idx = face.any(dim=1 - dim).nonzero().flatten()
        h = grid.spacing[t]
        lo[t] = (int(idx.min()) + 0.5) * h - h / 4
        hi[t] = (int(idx.max()) + 0.5) * h + h / 4
    return tuple(lo), tuple(hi)


def topo_set_dict(scenario: Scenario, geometry: RoomGeometry) -> dict:
    actions = []
    for name, vent in vent_patches(scenario):
        box = vent_face_box(vent, geometry)
        if box is None:
            raise ValueError(f"{name.replace('_', 's.', 1)}: the opening covers no fluid face of the room")
        (x0, y0, z0), (x1, y1, z1) = box
        actions.append({"name": name, "type": "faceSet", "action": "new", "source": "patchToFace",
                        "sourceInfo": {"name": "walls"}})
        actions.append({"name": name, "type": "faceSet", "action": "subset", "source": "boxToFace",
                        "sourceInfo": {"box": Raw(f"({x0!r} {y0!r} {z0!r}) ({x1!r} {y1!r} {z1!r})")}})
    return {"actions": actions}


def create_patch_dict(scenario: Scenario) -> dict:
    return {"pointSync": False,
            "patches": [{"name": name, "patchInfo": {"type": "patch"}, "constructFrom": "set", "set": name}
                        for name, _ in vent_patches(scenario)]}


def build_mesh(scenario: Scenario, case: Path, tools: Tools) -> CellMap:
    """Mesh ``scenario`` into ``case`` (constant/polyMesh) by steps 1–4 above; the cell map back."""
    geometry = room_geometry(scenario)
    write_foam(case / "system" / "blockMeshDict", "dictionary", block_mesh_dict(scenario), "system")
    minimal_system(case)
    tools.run(case, "blockMesh")
    if not bool(geometry.fluid.all()):
        nx, ny, nz = geometry.grid.shape
        # blockMesh label of cell (i, j, k) is i + nx (j + ny k); fluid is indexed [i, j, k]
        ii, jj, kk = np.nonzero(geometry.fluid.numpy())
        write_cell_set(case / "constant" / "polyMesh" / "sets" / "fluid", ii + nx * (jj + ny * kk))
        tools.run(case, "subsetMesh", "fluid", "-patch", "obstacles", "-overwrite")
    write_foam(case / "system" / "topoSetDict", "dictionary", topo_set_dict(scenario, geometry), "system")
    tools.run(case, "topoSet")
    write_foam(case / "system" / "createPatchDict", "dictionary", create_patch_dict(scenario), "system")
    tools.run(case, "createPatch", "-overwrite")
    add_empty_patch(case, "reference")
    cells = read_cell_map(scenario, case, tools)
    if not np.array_equal(np.sort(cells.index), np.nonzero(geometry.fluid.reshape(-1).numpy())[0]):
        raise FoamFormatError(f"{case}: the mesh's cells are not the scenario's fluid cells")
    return cells


def minimal_system(case: Path) -> None:
    """The controlDict, fvSchemes and fvSolution every utility needs to start (solvers write their own)."""
    files = {"controlDict": {"application": "blockMesh", "startFrom": "startTime", "startTime": 0,
                             "stopAt": "endTime", "endTime": 0, "deltaT": 1, "writeControl": "timeStep",
                             "writeInterval": 1, "writeFormat": "ascii", "writePrecision": 17,
                             "timePrecision": 12, "runTimeModifiable": False},
             "fvSchemes": {k: {"default": "none"} for k in ("ddtSchemes", "gradSchemes", "divSchemes",
                                                           "laplacianSchemes", "interpolationSchemes",
                                                           "snGradSchemes")},
             "fvSolution": {}}
    for name, body in files.items():
        if not (case / "system" / name).exists():
            write_foam(case / "system" / name, "dictionary", body, "system")


def add_empty_patch(case: Path, name: str) -> None:
    """Append a patch with no faces to constant/polyMesh/boundary (valid: it starts after the last face)."""
    path = case / "constant" / "polyMesh" / "boundary"
    text = path.read_text()
    patches = read_boundary(case)
    if name in patches:
        return
    end = max(int(e["startFace"]) + int(e["nFaces"]) for e in patches.values())
    m = re.search(r"^(\d+)\s*\n\(", text, re.M)
    if m is None:
        raise FoamFormatError(f"{path}: no patch count")
    close = text.rindex(")")
    entry = f"    {name}\n    {{\n        type            patch;\n        nFaces          0;\n" \
            f"        startFace       {end};\n    }}\n"
    text = text[:m.start(1)] + str(int(m.group(1)) + 1) + text[m.end(1):close] + entry + text[close:]
    path.write_text(text)


def read_boundary(case: Path) -> dict[str, dict[str, str]]:
    """constant/polyMesh/boundary → {patch: {"type", "nFaces", "startFace"}}."""
    path = case / "constant" / "polyMesh" / "boundary"
    text = path.read_text()
    body = re.sub(r"FoamFile\s*\{[^}]*\}", "", text, count=1)
    out = {}
    for m in re.finditer(r"(\w+)\s*\{([^}]*)\}", body):
        entries = dict(re.findall(r"(\w+)\s+([^;]+);", m.group(2)))
        out[m.group(1)] = entries
    if not out:
        raise FoamFormatError(f"{path}: no patches")
    return out


def read_cell_map(scenario: Scenario, case: Path, tools: Tools) -> CellMap:
    """Cell centres and volumes (written by postProcess into 0/) matched to grid indices."""
    (case / "0").mkdir(exist_ok=True)
    tools.run(case, "postProcess", "-func", "writeCellCentres", "-time", "0", log_name="writeCellCentres")
    tools.run(case, "postProcess", "-func", "writeCellVolumes", "-time", "0", log_name="writeCellVolumes")
    centres = read_internal_field(case / "0" / "C")
    volume = read_internal_field(case / "0" / "V", n_cells=centres.shape[0])
    shape = scenario.room.shape
    h = np.array(scenario.room.spacing)
    ijk = np.floor(centres / h).astype(np.int64)
    if (ijk < 0).any() or (ijk >= np.array(shape)).any() or np.abs(centres - (ijk + 0.5) * h).max() > 1e-6 * h.min():
        raise FoamFormatError(f"{case}: the mesh's cell centres are not the centres of the scenario's grid")
    index = np.ravel_multi_index(tuple(ijk.T), shape)
    if np.unique(index).size != index.size:
        raise FoamFormatError(f"{case}: two OpenFOAM cells map to one grid cell")
    patches = {name: int(e["nFaces"]) for name, e in read_boundary(case).items()}
    for f in ("C", "Cx", "Cy", "Cz", "V"):
        (case / "0" / f).unlink(missing_ok=True)
    return CellMap(shape=shape, index=index, volume=volume, patches=patches)
