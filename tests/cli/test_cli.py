"""The `closedloop` command line as a whole (cli/__init__.py): every command has its help, and a missing
input is reported by every command the same way."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.cli import app
from tests.cli.cli_runner import flat, runner
from tests.conftest import ROOM


@pytest.mark.parametrize("args", [[], ["simulate"], ["train"], ["predict"], ["campaign"], ["campaign", "run"],
                                  ["campaign", "status"], ["serve"]])
def test_every_command_has_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_missing_inputs_are_reported(tmp_path: Path):
    assert "not found" in flat(runner.invoke(app, ["simulate", str(tmp_path / "nope.toml"), "--out", "x"]))
    res = runner.invoke(app, ["campaign", "status", str(tmp_path)])
    assert res.exit_code == 2 and "not a campaign directory" in flat(res)
    res = runner.invoke(app, ["predict", str(tmp_path / "none.pt"), str(ROOM), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "checkpoint not found" in flat(res)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["predict", str(junk), str(ROOM), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "not a readable closedloop checkpoint" in flat(res)
