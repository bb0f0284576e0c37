"""What ``closedloop simulate`` leaves in its output directory: the case, its figure, any snapshots,
and the mass budget it reports."""
from __future__ import annotations

import dataclasses
import re

import torch

from closedloop.lab.outputs import mass_summary, write_simulation
from closedloop.lab.store import read_case


def test_the_case_and_its_figure_are_written_and_read_back(tmp_path, tiny_scenario, tiny_result):
    out = tmp_path / "out"
    written = write_simulation(out, tiny_scenario, tiny_result)
    case_id = tiny_scenario.case_id()
    assert written == [out / f"{case_id}.parquet", out / f"{case_id}.png"]
    case = read_case(written[0])
    assert case.case_id == case_id and case.provenance["producer"] == "reference"
    assert torch.equal(case.plane, tiny_result.plane.to(torch.float64))
    assert torch.equal(case.times, tiny_result.times.to(torch.float64))
    assert written[1].read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)  # no temporary file left


def test_snapshots_are_written_beside_the_case(tmp_path, tiny_scenario, tiny_result):
    fields = {20.0: torch.full((2, 3, 4), 2.0, dtype=torch.float64), 10.0: torch.ones(2, 3, 4, dtype=torch.float64)}
    written = write_simulation(tmp_path, tiny_scenario, dataclasses.replace(tiny_result, snapshots=fields))
    assert written[-1] == tmp_path / f"{tiny_scenario.case_id()}.snapshots.pt"
    saved = torch.load(written[-1], weights_only=True)
    assert saved["times"] == [10.0, 20.0] and saved["spacing"] == list(tiny_scenario.room.spacing)
    assert torch.equal(saved["fields"][0], fields[10.0]) and torch.equal(saved["fields"][1], fields[20.0])


def test_mass_summary_reports_the_budget_and_its_closing_error(tiny_result):
    text = mass_summary(tiny_result)
    assert text.startswith(f"mass: emitted {float(tiny_result.mass_emitted[-1]):.4g}, in room ")
    closing = float(re.fullmatch(r".*balance error (\S+) relative", text).group(1))
    assert closing < 1e-9  # the reference closes its budget to round-off
    leaky = dataclasses.replace(tiny_result, mass_exhausted=tiny_result.mass_exhausted * 0.0)
    assert float(re.fullmatch(r".*balance error (\S+) relative", mass_summary(leaky)).group(1)) > closing
