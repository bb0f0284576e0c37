"""The runner every CLI test invokes the app with, and its output as one line."""
from __future__ import annotations

from typer.testing import CliRunner

runner = CliRunner()


def flat(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())
