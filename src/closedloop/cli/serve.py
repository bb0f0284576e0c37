"""``closedloop serve``: the deployments with their schedules, on a Prefect server."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(config: Annotated[Path, typer.Option(help="Campaign config the deployment runs.")] = Path("configs/smoke.toml"),
          cron: Annotated[str, typer.Option(help="Cron schedule (UTC).")] = "0 3 * * *") -> None:
    """Serve the campaign flow as a deployment with a cron schedule (needs a Prefect server)."""
    from closedloop.deployments.serve import serve_deployments

    serve_deployments(config_path=str(config), cron=cron)
