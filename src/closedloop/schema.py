"""The base of every configuration model (scenario, campaign, steering) and the one TOML reader.

:class:`Strict` refuses unknown fields (a typo names its field instead of being ignored) and is
immutable once validated (derive a new model with ``model_copy`` or the ``with_*`` helpers).
:func:`read_toml` is how every entry point (CLI, flows, deployments, steering) reads a config or
scenario file: anything unreadable becomes one :class:`UnreadableFile` error naming the file and,
where there is one, the position.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnreadableFile(ValueError):
    """A config or scenario file that is missing, not text, or not TOML; the message names it."""


def _position(raw: bytes, offset: int) -> str:
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML table in ``path``; :class:`UnreadableFile` for a missing or unreadable file, bytes
    that are not UTF-8 text (binary content included) or text that is not TOML."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UnreadableFile(f"{path}: file not found") from None
    except OSError as err:
        raise UnreadableFile(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnreadableFile(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at "
                             f"{_position(raw, err.start)})") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise UnreadableFile(f"{path}: binary content, not a TOML text file (NUL byte at "
                             f"{_position(raw, len(text[:nul].encode()))})")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UnreadableFile(f"{path}: not valid TOML ({err})") from None
