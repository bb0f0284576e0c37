"""Running OpenFOAM tools: the version from the banner, and every failure a clear error with the log."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.simulators.external import SimulatorFailed
from closedloop.simulators.openfoam.foamfile import Raw, write_foam
from closedloop.simulators.openfoam.mesh import minimal_system
from closedloop.simulators.openfoam.runner import (OpenFOAMError, OpenFOAMMissing, Tools, fatal_message,
                                                   openfoam_env, openfoam_version, require_openfoam,
                                                   version_from_banner)
from openfoam_cases import requires_openfoam


def test_version_from_the_banner():
    assert version_from_banner("Build  : OPENFOAM=1912 patch=200626\nArch : x") == "OpenFOAM v1912 (patch 200626)"
    assert version_from_banner("Build  : OPENFOAM=2406\n") == "OpenFOAM v2406"
    assert version_from_banner("garbage") == "OpenFOAM (unknown version)"


def test_project_dir_is_set_only_where_unset(monkeypatch):
    monkeypatch.delenv("WM_PROJECT_DIR", raising=False)
    assert openfoam_env()["WM_PROJECT_DIR"] == "/usr/share/openfoam"
    monkeypatch.setenv("WM_PROJECT_DIR", "/opt/openfoam")
    assert openfoam_env()["WM_PROJECT_DIR"] == "/opt/openfoam"


def test_missing_openfoam_says_what_to_install(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OpenFOAMMissing, match="apt-get install openfoam"):
        require_openfoam("blockMesh")
    assert issubclass(OpenFOAMError, SimulatorFailed)  # retried, then recorded failed, as any simulator failure


@requires_openfoam
def test_installed_version():
    assert openfoam_version().startswith("OpenFOAM v")


@requires_openfoam
def test_a_bad_dictionary_fails_with_openfoams_message_and_the_log(tmp_path: Path):
    case = tmp_path / "case"
    minimal_system(case)
    (case / "system" / "blockMeshDict").write_text("FoamFile { version 2.0; format ascii; class dictionary; "
                                                   "object blockMeshDict; }\nvertices ( (0 0 0) ;\n")
    tools = Tools(timeout=60)
    with pytest.raises(OpenFOAMError) as err:
        tools.run(case, "blockMesh")
    text = str(err.value)
    assert "OpenFOAM blockMesh" in text and str(case / "log.blockMesh") in text
    assert "OpenFOAM said:" in text and "FOAM FATAL" in text  # OpenFOAM's own message, not only the traceback
    assert (case / "log.blockMesh").exists() and not tools.runs  # the log is kept; no run is counted


@requires_openfoam
def test_a_tool_that_runs_past_its_timeout_is_killed(tmp_path: Path):
    case = tmp_path / "case"
    minimal_system(case)
    body = {"convertToMeters": 1, "vertices": [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1),
                                               (1, 1, 1), (0, 1, 1)],
            "blocks": [Raw("hex (0 1 2 3 4 5 6 7) (400 400 400) simpleGrading (1 1 1)")], "boundary": []}
    write_foam(case / "system" / "blockMeshDict", "dictionary", body, "system")
    with pytest.raises(OpenFOAMError, match="timed out after 0.5 s"):
        Tools(timeout=0.5).run(case, "blockMesh")


@requires_openfoam
def test_a_successful_run_counts_its_cpu_time(tmp_path: Path):
    case = tmp_path / "case"
    minimal_system(case)
    tools = Tools(timeout=60)
    run = tools.run(case, "foamListTimes")
    assert run.returncode == 0 and run.cpu_seconds > 0 and tools.cpu_seconds == run.cpu_seconds
    assert fatal_message(case / "log.foamListTimes") is None
