"""A real Prefect server in a subprocess for end-to-end tests, and what the shared live lab holds.

The server itself is :func:`closedloop.deployments.local_server.local_server` (127.0.0.1, a free
port, its own PREFECT_HOME; ``database_url`` points it at PostgreSQL instead of the embedded SQLite;
``ui`` serves the web UI too); here it fails the test when it exits and skips it when it never answers.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from closedloop.deployments.local_server import LocalServer, ServerExited, ServerTimeout, free_port, local_server, stop
from tests.conftest import REPO

__all__ = ["POSTGRES_SCRIPT", "LiveLab", "Postgres", "Server", "free_port", "prefect_server", "stop"]

POSTGRES_SCRIPT = REPO / "deployments" / "postgres.sh"
Server = LocalServer


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
    artifacts: dict[str, dict]  # by type: "table", "markdown" (the round report), "progress"; and "summary"


@contextlib.contextmanager
def prefect_server(tmp: Path, database_url: str | None = None, ui: bool = False,
                   timeout: float = 90) -> Iterator[Server]:
    """Start ``prefect server start`` and wait for /api/health; skip the test if it never answers."""
    try:
        with local_server(tmp, database_url=database_url, ui=ui, timeout=timeout) as server:
            yield server
    except ServerExited as err:
        pytest.fail(str(err))
    except ServerTimeout as err:
        pytest.skip(str(err))
