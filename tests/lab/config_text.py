"""Campaign config texts for the lab tests: configs/smoke.toml with an absolute scenario path, altered."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOM_TOML = REPO / "configs" / "scenarios" / "room.toml"
SMOKE_TOML = REPO / "configs" / "smoke.toml"


def smoke_text() -> str:
    text = SMOKE_TOML.read_text()
    assert 'scenario = "scenarios/room.toml"' in text
    return text.replace('scenario = "scenarios/room.toml"', f'scenario = "{ROOM_TOML.as_posix()}"')


def altered(text: str, old: str, new: str, count: int = 1) -> str:
    assert text.count(old) >= count, f"{old!r} not in the base config"
    return text.replace(old, new, count)


def write(tmp_path, text, name="campaign.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path
