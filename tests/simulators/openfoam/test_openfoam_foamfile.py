"""The OpenFOAM ASCII format: what we write OpenFOAM reads back as written; what it writes we parse, or
refuse by file name when it is truncated or garbled."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from closedloop.simulators.openfoam.foamfile import (FoamFormatError, Raw, foam_text, read_internal_field,
                                                     read_patch_value, read_table, write_cell_set, write_foam)
from closedloop.simulators.openfoam.runner import openfoam_env
from openfoam_cases import requires_openfoam

FIELD = """FoamFile
{{
    version 2.0; format ascii; class volScalarField; object c;
}}
dimensions [0 0 0 0 0 0 0];
internalField   nonuniform List<scalar> 3
(
1.5
-2e-3
{third}
)
;
boundaryField
{{
    walls {{ type zeroGradient; }}
    inlet_0
    {{
        type fixedValue;
        value uniform 0.25;
    }}
}}
"""


def test_a_nonuniform_field_and_a_patch_value_are_read(tmp_path: Path):
    path = tmp_path / "c"
    path.write_text(FIELD.format(third="7"))
    assert np.array_equal(read_internal_field(path, n_cells=3), [1.5, -2e-3, 7.0])
    assert np.array_equal(read_patch_value(path, "inlet_0"), [0.25])


def test_uniform_and_vector_fields(tmp_path: Path):
    path = tmp_path / "U"
    path.write_text("internalField uniform (1 -2 3.5);\n")
    assert read_internal_field(path, n_cells=2).tolist() == [[1, -2, 3.5], [1, -2, 3.5]]
    path.write_text("internalField nonuniform List<vector> 2\n(\n(1 2 3)\n(4 5 6e1)\n)\n;\n")
    assert read_internal_field(path).tolist() == [[1, 2, 3], [4, 5, 60]]


@pytest.mark.parametrize("text, reason", [
    (FIELD.format(third="x7"), "not a number"),
    ("internalField nonuniform List<scalar> 3\n(\n1\n2\n", "not closed"),
    ("internalField nonuniform List<scalar> 4\n(\n1\n2\n3\n)\n;", "expected 4 scalars, read 3"),
    ("dimensions [0 0 0 0 0 0 0];", "no internalField"),
])
def test_a_garbled_or_truncated_field_is_refused_by_name(tmp_path: Path, text: str, reason: str):
    path = tmp_path / "c"
    path.write_text(text)
    with pytest.raises(FoamFormatError, match=reason) as err:
        read_internal_field(path, n_cells=3)
    assert str(path) in str(err.value)


def test_a_missing_field_and_a_cell_count_mismatch(tmp_path: Path):
    with pytest.raises(FoamFormatError, match="cannot be read"):
        read_internal_field(tmp_path / "nothing")
    (tmp_path / "c").write_text(FIELD.format(third="7"))
    with pytest.raises(FoamFormatError, match="3 values, the mesh 4 cells"):
        read_internal_field(tmp_path / "c", n_cells=4)


def test_function_object_tables(tmp_path: Path):
    path = tmp_path / "surfaceFieldValue.dat"
    path.write_text("# Region type : patch exhaust_0\n# Time weightedSum(c)\n0.5\t1e-3\n1\t2e-3\n")
    assert read_table(path).tolist() == [[0.5, 1e-3], [1.0, 2e-3]]
    path.write_text("# Time x\n0.5 1\n1\n")
    with pytest.raises(FoamFormatError, match="ragged"):
        read_table(path)


def test_dictionaries_are_formatted_as_openfoam_entries():
    text = foam_text("dictionary", "d", {"a": 1, "b": 0.1, "flag": False, "sub": {"v": (1.0, 2.0)},
                                         "dims": Raw("[0 2 -1 0 0 0 0]"), "items": [{"name": "x"}]})
    body = text[text.index("}", text.index("FoamFile")) + 1:]
    assert "a 1;" in body and "b 0.1;" in body and "flag false;" in body and "v (1.0 2.0);" in body
    assert "dims [0 2 -1 0 0 0 0];" in body and "items\n(" in body and body.rstrip().endswith(");")


@requires_openfoam
def test_openfoam_reads_our_dictionary_and_cell_set_as_written(tmp_path: Path):
    """foamDictionary (OpenFOAM's own parser) reads back every value we wrote."""
    body = {"deltaT": 0.1 / 3, "name": "walls", "solver": {"tolerance": 1e-12, "relTol": 0},
            '"(U|k)"': {"relTol": 0.1}, "list": (1, 2, 3), "actions": [{"name": "a", "type": "faceSet"}]}
    path = write_foam(tmp_path / "testDict", "dictionary", body)
    env = {**__import__("os").environ, **openfoam_env()}

    def value(entry: str) -> str:
        out = subprocess.run(["foamDictionary", "-entry", entry, "-value", str(path)], capture_output=True,
                             text=True, env=env, check=True)
        return out.stdout.strip()

    assert float(value("deltaT")) == pytest.approx(0.1 / 3, rel=1e-5)  # it prints 6 digits; we write 17
    assert f"deltaT {0.1 / 3!r};" in path.read_text()
    assert value("name") == "walls" and float(value("solver/tolerance")) == 1e-12
    assert value("list").replace(" ", "") == "(123)"
    cells = write_cell_set(tmp_path / "sets" / "fluid", np.array([5, 1, 3, 3]))
    text = cells.read_text()
    assert "\n3\n(\n1\n3\n5\n)\n" in text  # sorted, unique, counted
