"""One campaign per directory: an exclusive ``flock`` on ``campaign.lock`` held while the flow runs.

The operating system drops a ``flock`` when its holder exits, however it exits (SIGKILL, OOM,
power loss of a network client), so a lock can never outlive its process and there is nothing to
"break". The file also holds a small JSON record (pid, host, start time, flow run) so that a second
campaign can say who holds the directory. A clean exit empties the record; a record found on a
lock that is free was left by a holder that died, and is reported as a stale lock taken over.

The lock file is never deleted: unlinking it would let two processes lock two different inodes.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCK_NAME = "campaign.lock"


class CampaignLocked(RuntimeError):
    """Another live process holds the campaign directory."""


@dataclass
class LockInfo:
    path: Path
    record: dict[str, Any]
    stale: dict[str, Any] | None = None  # the record a dead holder left, when one was taken over
    notes: list[str] = field(default_factory=list)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_record(path: Path) -> dict[str, Any] | None:
    """The holder's record, or None when the file is absent, empty or being written."""
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        record = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def describe(record: dict[str, Any] | None) -> str:
    if not record:
        return "another process (it has not written its pid yet)"
    text = f"pid {record.get('pid')} on host {record.get('host')}"
    if record.get("started"):
        text += f", since {record['started']}"
    if record.get("owner"):
        text += f", flow run {record['owner']}"
    return text


def _write_record(fd: int, record: dict[str, Any]) -> None:
    data = json.dumps(record, sort_keys=True).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


@contextlib.contextmanager
def campaign_lock(root: str | Path, owner: str | None = None) -> Iterator[LockInfo]:
    """Hold ``root/campaign.lock`` for the duration of the block, or raise :class:`CampaignLocked`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = read_record(path)
        raise CampaignLocked(
            f"{root}: campaign directory is in use by {describe(holder)}; wait for that run to finish "
            f"or stop it, or use another --dir (lock file {path})") from None
    except BaseException:
        os.close(fd)
        raise
    try:
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        info = LockInfo(path=path, record={"pid": os.getpid(), "host": socket.gethostname(),
                                           "started": started, "owner": owner})
        previous = read_record(path)
        if previous:
            info.stale = previous
            same_host = previous.get("host") == info.record["host"]
            pid = previous.get("pid")
            if same_host and isinstance(pid, int) and pid_alive(pid) and pid != os.getpid():
                why = f"pid {pid} is running but no longer holds the lock (pid reused?)"
            elif same_host:
                why = f"pid {pid} is not running"
            else:
                why = "its flock was released, so that process has ended"
            info.notes.append(f"{path}: took over a stale lock left by {describe(previous)} ({why}); "
                              "the campaign resumes from its ledger")
        _write_record(fd, info.record)
        yield info
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # an empty record: released cleanly
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_held(root: str | Path) -> bool:
    """Whether a live process holds ``root/campaign.lock`` now (probed without taking it for long)."""
    path = Path(root) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
