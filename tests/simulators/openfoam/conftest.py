"""The OpenFOAM adapter's tests share the simulators' scenario data (tests/simulators/sim_test_scenarios.py)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
