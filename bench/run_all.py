"""Run every benchmark in bench/ (each writes bench/results/NAME.json and prints its table)."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent

if __name__ == "__main__":
    names = sys.argv[1:] or sorted(p.stem for p in HERE.glob("*.py") if p.stem not in {"run_all", "common"})
    for name in names:
        print(f"\n=== bench/{name}.py ===", flush=True)
        sys.argv = [str(HERE / f"{name}.py")]  # each benchmark parses its own (empty) options
        runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
