"""The one TOML reader: every unreadable file is one error naming the file and the position."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from closedloop.cli import app
from closedloop.lab.config import ConfigError, load_campaign_config
from closedloop.schema import UnreadableFile, read_toml
from tests.conftest import SMOKE


@pytest.mark.parametrize("content, message", [
    (b'name = "caf\xe9"\n', r"not UTF-8 text \(byte 0xe9 at line 1, column 12\)"),
    (b'a = 1\n\x89PNG\r\n\x1a\n\x00\x00', r"not UTF-8 text \(byte 0x89 at line 2, column 1\)"),
    (b'a = 1\nb = "x\x00y"\n', r"binary content, not a TOML text file \(NUL byte at line 2, column 7\)"),
    (b'a = = 1\n', r"not valid TOML \(.*line 1"),
])
def test_unreadable_content_names_file_and_position(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(UnreadableFile, match=rf"^{path}: {message}"):
        read_toml(path)


def test_missing_and_good_files(tmp_path: Path):
    with pytest.raises(UnreadableFile, match="nope.toml: file not found"):
        read_toml(tmp_path / "nope.toml")
    assert read_toml(SMOKE)["name"] == "smoke"


def test_campaign_config_names_the_scenario_file_it_cannot_read(tmp_path: Path):
    (tmp_path / "room.toml").write_bytes(b"\xff\xfe binary")
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMOKE.read_text())
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "room.toml").write_bytes(b"\xff\xfe binary")
    with pytest.raises(ConfigError, match=r"scenarios/room.toml: not UTF-8 text \(byte 0xff at line 1, column 1\)"):
        load_campaign_config(cfg)
    cfg.write_bytes(b"name = \xc3\x28")
    with pytest.raises(ConfigError, match=r"c.toml: not UTF-8 text"):
        load_campaign_config(cfg)


def test_cli_refuses_binary_files_by_name_without_traceback(tmp_path: Path):
    runner = CliRunner()
    blob = tmp_path / "blob.toml"
    blob.write_bytes(bytes(range(256)))
    for args in (["simulate", str(blob), "--out", str(tmp_path / "o")], ["campaign", "run", str(blob)]):
        result = runner.invoke(app, args)
        text = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert "blob.toml: not UTF-8 text" in text and "Traceback" not in text
    assert not (tmp_path / "o").exists()
