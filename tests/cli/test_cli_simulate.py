"""`closedloop simulate`: a scenario that cannot be valid fails before any compute, naming the field."""
from __future__ import annotations

from pathlib import Path

from closedloop.cli import app
from tests.cli.cli_runner import flat, runner
from tests.conftest import ROOM


def test_bad_scenario_names_the_field(tmp_path: Path):
    scen = tmp_path / "bad.toml"
    scen.write_text(ROOM.read_text().replace("eddy_diffusivity = 0.02", "eddy_diffusivity = -1.0"))
    result = runner.invoke(app, ["simulate", str(scen), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "eddy_diffusivity" in flat(result)
    assert not (tmp_path / "o").exists()
