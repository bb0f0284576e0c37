"""What every command shares: the console, failing with a message, progress bars, reading a scenario."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from closedloop.simulators import Scenario

# Wide enough for the ledger table when output goes to a file or `make` (no terminal to measure).
console = Console(width=None if sys.stdout.isatty() else 160)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` and exit with status 2 (bad input; nothing was computed)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(), console=console, transient=False)


def load_scenario_or_fail(path: Path) -> Scenario:
    from closedloop.lab.config import format_validation_error
    from closedloop.schema import UnreadableFile
    from closedloop.simulators.scenario import load_scenario

    if not path.is_file():
        fail(f"{path}: scenario file not found")
    try:
        return load_scenario(path)
    except ValidationError as err:
        fail(format_validation_error(err, str(path)))
    except UnreadableFile as err:  # not text, not TOML: the message names the file and position
        fail(str(err))
