"""Atomic file writes and checksums: write a temporary sibling, fsync, then rename over the target.

``os.replace`` is atomic on POSIX, so a reader sees the old file or the new one, never half of
either, and a failure while writing leaves the previous file untouched. The directory is fsynced
after the rename so the new name survives a power cut. A process killed between the write and the
rename leaves only its temporary sibling (``.NAME.XXXX.tmp``), which :func:`remove_temp_files`
clears when the campaign next starts (under its lock, so no live writer is disturbed).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from closedloop.lab import faults

TEMP_GLOB = ".*.tmp"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | Path, label: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    ``label`` names the kind of file for fault injection (``rename:<label>``); default the file name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        faults.point(f"rename:{label or target.name}", target.name)
        os.replace(tmp_path, target)
        fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(target: str | Path, write: Callable[[Path], None], label: str | None = None) -> None:
    """Call ``write(tmp)`` then move ``tmp`` onto ``target`` atomically."""
    with atomic_path(target, label) as tmp:
        write(tmp)


def atomic_write_text(target: str | Path, text: str, label: str | None = None) -> None:
    atomic_write(target, lambda p: p.write_text(text), label)


def atomic_write_bytes(target: str | Path, data: bytes, label: str | None = None) -> None:
    atomic_write(target, lambda p: p.write_bytes(data), label)


def remove_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temporary siblings a killed writer left in ``directory`` (not recursive).

    Only safe while no other process writes there, i.e. under the campaign lock.
    """
    removed = []
    for path in sorted(Path(directory).glob(TEMP_GLOB)):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class IntegrityError(ValueError):
    """A stored file differs from the checksum recorded when it was written."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None) -> None:
    """Raise :class:`IntegrityError` (naming the file, both digests and its size) on a mismatch."""
    if not expected:
        return
    if not path.is_file():
        raise IntegrityError(f"{path}: file is missing (sha256 {expected[:16]}… was recorded)")
    actual = file_sha256(path)
    if actual != expected:
        raise IntegrityError(f"{path}: checksum mismatch: recorded sha256 {expected[:16]}…, file has "
                             f"{actual[:16]}… ({path.stat().st_size} bytes); the file was damaged after it "
                             "was written")
