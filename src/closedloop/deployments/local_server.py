"""A throwaway local Prefect server: for end-to-end tests and benchmarks, not for serving users.

:func:`local_server` starts ``prefect server start`` on 127.0.0.1 at a free port, with its own
PREFECT_HOME under a work directory (nothing of the caller's Prefect profile is read or written),
waits until ``/api/health`` answers, and stops the whole process group on exit. ``deployments/ui.sh``
is the long-lived server for people.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

PREFECT = Path(sys.executable).with_name("prefect")


class ServerExited(RuntimeError):
    """The server process ended before it answered (its log's tail is in the message)."""


class ServerTimeout(TimeoutError):
    """The server did not answer within the timeout (its log's tail is in the message)."""


@dataclass
class LocalServer:
    url: str  # http://127.0.0.1:PORT
    api: str  # the same + /api
    home: Path  # the server's PREFECT_HOME
    log: Path  # its stdout and stderr

    def client_env(self) -> dict[str, str]:
        """Environment for a subprocess that talks to this server (and to nothing else)."""
        return dict(clean_env(self.home.parent / "client-home"), PREFECT_API_URL=self.api)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:] if self.log.is_file() else ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without its PREFECT_* settings: ``home`` as PREFECT_HOME, no
    analytics, warnings only, and closedloop's flow cache off."""
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


def wait_healthy(server: LocalServer, proc: subprocess.Popen, timeout: float) -> None:
    """Poll ``/api/health`` every half second until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ServerExited(f"the Prefect server exited (rc={proc.returncode}):\n{server.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.api}/health", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise ServerTimeout(f"the Prefect server did not answer within {timeout:.0f} s:\n{server.tail()}")
        time.sleep(0.5)


@contextlib.contextmanager
def local_server(workdir: Path, database_url: str | None = None, ui: bool = False, timeout: float = 90,
                 env: Mapping[str, str] | None = None) -> Iterator[LocalServer]:
    """A Prefect server for the ``with`` block, its home and log in ``workdir``.

    ``database_url``: PostgreSQL instead of the embedded SQLite; ``ui``: serve the web UI too;
    ``env``: further server settings (e.g. PREFECT_SERVER_API_AUTH_STRING). Raises
    :class:`ServerExited` or :class:`ServerTimeout` when it never answers.
    """
    workdir = Path(workdir)
    port = free_port()
    server = LocalServer(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api", workdir / "server-home",
                         workdir / "server.log")
    server_env = dict(clean_env(server.home), PREFECT_SERVER_UI_ENABLED="true" if ui else "false", **(env or {}))
    if database_url:
        server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    if ui:
        server_env["PREFECT_UI_API_URL"] = server.api
    with server.log.open("w") as out:
        proc = subprocess.Popen([str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=server_env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_healthy(server, proc, timeout)
        yield server
    finally:
        stop(proc)
