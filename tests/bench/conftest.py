"""Tests of the benchmark-side modules (bench/peer_schemes): bench/ on the import path, as when a
benchmark runs (``python bench/NAME.py``)."""
from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
