"""Check that the instruction-set variables of CI's second pass take effect, and say which did.

Run with the second pass's environment. ATen's kernels (``ATEN_CPU_CAPABILITY``) must report the
capability asked for: else the pass would repeat the first one, and this exits 1. MKL's code path
(``MKL_ENABLE_INSTRUCTIONS``, ``MKL_CBWR``) is seen only in its results: a float64 product
C = A·B (k = 523, so each entry sums in MKL's blocking order) is computed here and in a child
process without the variables; bitwise different C means MKL took another path. MKL honours
``MKL_ENABLE_INSTRUCTIONS`` on Intel CPUs only (elsewhere it runs one generic path), ``MKL_CBWR`` on
any, so a CPU where neither changes the product gets a warning, not a failure.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import torch

VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")


def product_digest() -> str:
    """sha256 of A·B for fixed float64 A (257 × 523) and B (523 × 129)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(257, 523, dtype=torch.float64, generator=g)
    b = torch.randn(523, 129, dtype=torch.float64, generator=g)
    return hashlib.sha256((a @ b).numpy().tobytes()).hexdigest()


def native_digest() -> str:
    """The same product in a child process without the second pass's variables."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    code = "import sys; sys.path.insert(0, '.ci'); import isa_check; print(isa_check.product_digest())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, timeout=300)
    return done.stdout.strip()


def main() -> int:
    wanted = os.environ.get("ATEN_CPU_CAPABILITY", "").upper()
    actual = torch.backends.cpu.get_cpu_capability()
    print("second pass: " + " ".join(f"{k}={os.environ.get(k, '')}" for k in VARIABLES))
    print(f"ATen CPU capability: {actual} (asked for {wanted or 'nothing'})")
    if wanted and actual != wanted:
        print(f"error: ATEN_CPU_CAPABILITY={wanted} did not take effect", file=sys.stderr)
        return 1
    changed = product_digest() != native_digest()
    print(f"MKL float64 product differs from the native path: {'yes' if changed else 'no'}")
    if not changed:
        print("warning: MKL runs the same path as the first pass on this CPU", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
