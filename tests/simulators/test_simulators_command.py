"""The ``command`` simulator: an external program's plane series read back exactly, and every way it can
fail (exit code, timeout, missing, garbled or non-finite output) reported with the log's tail."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from closedloop.simulators import simulate
from closedloop.simulators.command import CommandSettings, CommandSimulator, derived, render
from closedloop.simulators.external import SimulatorFailed
from tests.simulators.sim_test_scenarios import room

FAKE = Path(__file__).with_name("fake_external_code.py")
REPO = Path(__file__).resolve().parents[2]


def short_room():
    return room(time={"horizon": 20.0, "output_interval": 10.0})


def settings(mode: str = "ours", **extra) -> CommandSettings:
    env = {"FAKE_MODE": mode, "PYTHONPATH": str(REPO / "src"), "CLOSEDLOOP_FLOW_CACHE": "off", **extra.pop("env", {})}
    return CommandSettings(command=[sys.executable, str(FAKE)], env=env, **extra)


@pytest.fixture(scope="module")
def ours():
    return simulate(short_room(), device="cpu")


def test_npz_round_trip_equals_our_solver(tmp_path: Path, ours):
    res = CommandSimulator(settings()).simulate(short_room(), workdir=tmp_path / "case")
    assert torch.equal(res.plane, ours.plane) and torch.equal(res.plane_mask, ours.plane_mask)
    assert torch.equal(res.mass_exhausted, ours.mass_exhausted)
    assert set(res.probes) == set(ours.probes) and all(torch.equal(res.probes[k], ours.probes[k]) for k in ours.probes)
    assert res.simulator == "command" and res.extra["mass_reported"] == ["mass_in_domain", "mass_emitted",
                                                                          "mass_exhausted"]
    # the program's own CPU time (it imports torch and solves: well over 0.1 s), not this process's
    assert res.cpu_seconds is not None and res.cpu_seconds > 0.1
    assert "mode ours" in (tmp_path / "case" / "log.txt").read_text()
    assert (tmp_path / "case" / "scenario.json").is_file()


def test_csv_reader_equals_npz(tmp_path: Path, ours):
    s = settings("csv", reader="csv", output="plane.csv", series_output="series.csv")
    res = CommandSimulator(s).simulate(short_room(), workdir=tmp_path / "case")
    assert torch.allclose(res.plane, ours.plane, rtol=1e-15, atol=0)
    assert torch.allclose(res.mass_emitted, ours.mass_emitted, rtol=1e-15, atol=0)
    assert set(res.probes) == set(ours.probes)


@pytest.mark.parametrize("mode, message", [
    ("exit", "exit code 3"), ("none", "wrote no plane_series.npz"), ("garbled", "plane must have shape"),
    ("nan", "non-finite"),
])
def test_failures_carry_the_reason_and_the_log_tail(tmp_path: Path, mode: str, message: str):
    """Each failure mode runs numpy only (no torch import): a second each."""
    with pytest.raises(SimulatorFailed) as err:
        CommandSimulator(settings(mode)).simulate(short_room(), workdir=tmp_path / "case")
    assert message in str(err.value)
    assert f"fake code: mode {mode}" in str(err.value)  # the log's tail
    if mode == "exit":
        assert "solver diverged at step 17" in str(err.value)


def test_timeout_kills_the_program(tmp_path: Path):
    s = settings("sleep", timeout_seconds=1.0)
    with pytest.raises(SimulatorFailed, match="timed out after 1 s"):
        CommandSimulator(s).simulate(short_room(), workdir=tmp_path / "case")


def test_temporary_directory_is_removed(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    res = CommandSimulator(settings("synthetic")).simulate(short_room())
    assert res.extra["case_dir"] is None and not list(tmp_path.glob("closedloop-command-*"))
    assert res.extra["mass_reported"] == ["mass_emitted"] and res.mass_in_domain.isnan().all()


def test_templates_are_rendered_and_unknown_names_refused(tmp_path: Path):
    template = tmp_path / "input.tpl"
    template.write_text("x = {{ source.x }}\nsize = {{ room.size }}\nT = {{ horizon }}\n")
    values = {**short_room().model_dump(mode="json"), **derived(short_room())}
    assert render(template.read_text(), values, "t") == "x = 2.5\nsize = 10.0 6.0 3.0\nT = 20.0\n"
    with pytest.raises(ValueError, match=r"templates.in: unknown placeholder \{\{ source.w \}\}"):
        render("{{ source.w }}", values, "templates.in")
    s = settings("synthetic", templates={"input.txt": template})
    CommandSimulator(s).simulate(short_room(), workdir=tmp_path / "case")
    assert (tmp_path / "case" / "input.txt").read_text().startswith("x = 2.5")


def test_identity_changes_with_what_changes_the_numbers(tmp_path: Path):
    a, b = CommandSimulator(settings()), CommandSimulator(settings(version="2.0"))
    sc = short_room()
    assert sc.case_id(a.identity()) != sc.case_id(b.identity()) != sc.case_id()
    assert sc.case_id(a.identity()) == sc.case_id(CommandSimulator(settings()).identity())


def test_bad_settings_name_the_field(tmp_path: Path):
    with pytest.raises(ValueError, match="templates.in.txt: template file .* not found"):
        CommandSettings(command=["x"], templates={"in.txt": tmp_path / "missing.tpl"})
    with pytest.raises(ValueError, match="must be a relative path"):
        CommandSettings(command=["x"], output="../out.npz")
    with pytest.raises(ValueError, match="command"):
        CommandSettings(command=[])


def test_plane_of_the_contract_matches_ours(ours):
    assert derived(short_room())["plane_shape"] == list(ours.plane.shape[1:])
    assert np.allclose(derived(short_room())["output_times"], ours.times.numpy())
