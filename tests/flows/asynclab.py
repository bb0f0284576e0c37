"""The crash tests' tiny campaign in async mode: 7 cases in all (3 in the initial design), 3 rounds."""
from __future__ import annotations

from pathlib import Path

from tests.flows.crashlab import tiny_config


def tiny_async_config(tmp_path: Path, max_cases: int = 7, rounds: int = 3, extra: str = "") -> Path:
    """The tiny campaign (40 s horizon, few epochs) with ``[campaign] mode = "async"`` on two threads
    (one case waiting beyond them) and a simulation budget."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tiny_config(tmp_path, rounds=rounds)
    text = path.read_text().replace("[budget]\n", f"[budget]\nmax_cases = {max_cases}\n")
    text = text.replace("[simulation]\n", "[simulation]\nmax_concurrent = 2\n")
    path.write_text(text + '\n[campaign]\nmode = "async"\nqueued = 1\n' + extra)
    return path
