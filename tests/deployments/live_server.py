"""A real Prefect server in a subprocess for end-to-end tests, and what the shared live lab holds.

The server binds 127.0.0.1 on a free port with its own PREFECT_HOME; ``database_url`` points it at
PostgreSQL instead of the embedded SQLite; ``ui`` serves the web UI too.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
POSTGRES_SCRIPT = REPO / "deployments" / "postgres.sh"


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    api: str  # the same + /api
    home: Path
    log: Path

    def client_env(self) -> dict[str, str]:
        """Environment for a subprocess that talks to this server (and to nothing else)."""
        return dict(_clean_env(self.home.parent / "client-home"), PREFECT_API_URL=self.api)

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.is_file() else ""


@dataclass
class Postgres:
    url: str | None  # postgresql+asyncpg://..., or None when PostgreSQL could not be started
    why_not: str = ""


@dataclass
class LiveLab:
    server: Server
    database_url: str | None
    config: Path
    campaign_dir: Path
    ledger: pd.DataFrame
    run: dict  # the campaign's flow run, as the REST API returns it
    deployment: dict
    artifacts: dict[str, dict]  # by type: "table", "markdown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING",
               CLOSEDLOOP_FLOW_CACHE="off")
    return env


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def prefect_server(tmp: Path, database_url: str | None = None, ui: bool = False,
                   timeout: float = 90) -> Iterator[Server]:
    """Start ``prefect server start`` and wait for /api/health; skip the test if it never answers."""
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api", tmp / "server-home", tmp / "server.log")
    env = dict(_clean_env(server.home), PREFECT_SERVER_UI_ENABLED="true" if ui else "false")
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    if ui:
        env["PREFECT_UI_API_URL"] = server.api
    with server.log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the Prefect server exited (rc={proc.returncode}):\n{server.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.api}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.skip(f"the Prefect server did not answer within {timeout:.0f} s:\n{server.tail()}")
            time.sleep(0.5)
        yield server
    finally:
        stop(proc)
