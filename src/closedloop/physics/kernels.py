"""Optional fusion of a rate or stage function into one compiled kernel (``torch.compile``, inductor).

Eager torch evaluates a finite-volume rate as dozens of small ATen calls (slices, ``cat`` for the
closed boundary faces, elementwise products), each with its own dispatch overhead and a temporary
array; on the small grids of a room (10⁴–10⁵ cells) that overhead, not arithmetic, is most of the
cost. Inductor fuses the same arithmetic into one C++ loop nest per stencil, with the same result
up to floating-point reassociation.

Selection, in order: the ``enabled`` argument, then the environment variable
``CLOSEDLOOP_COMPILE`` (``1``/``on`` or ``0``/``off``; default off, so tests and first use pay no
compilation). If compilation fails (no C++ toolchain, unsupported platform) the kernel falls back
to the eager function and says why in ``Kernel.fallback_reason``. The first call's wall time,
compilation included, is kept in ``Kernel.first_call_seconds`` so benchmarks report it apart (like
a peer's JIT time).

Scalars that change from call to call (Δt, stage coefficients) must be passed as 0-d tensors:
Python floats are baked into the compiled graph and each new value would recompile it.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

ENV_VAR = "CLOSEDLOOP_COMPILE"
_TRUE = {"1", "on", "true", "yes"}
_FALSE = {"0", "off", "false", "no", ""}
RECOMPILE_LIMIT = 64


def compile_enabled(enabled: bool | None = None) -> bool:
    """Resolve the compile switch: ``enabled`` if given, else ``$CLOSEDLOOP_COMPILE`` (default off)."""
    if enabled is not None:
        return bool(enabled)
    value = os.environ.get(ENV_VAR, "0").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{ENV_VAR} must be one of 1/on/0/off, got {value!r}")


def compile_wanted(default: bool) -> bool:
    """A library default for compiling (e.g. a config's ``compile``), unless ``$CLOSEDLOOP_COMPILE`` is
    set, which then decides for the whole process (``CLOSEDLOOP_COMPILE=0``: eager everywhere)."""
    if os.environ.get(ENV_VAR, "").strip() == "":
        return bool(default)
    return compile_enabled(None)


class Kernel:
    """``fn`` compiled by inductor on first call, or ``fn`` itself (eager) when disabled or failing.

    Call it like ``fn``. ``compiled`` tells which path runs; ``first_call_seconds`` is the wall time
    of the first call (compilation included when compiled).
    """

    def __init__(self, fn: Callable[..., Any], enabled: bool | None = None, dynamic: bool = False) -> None:
        self.fn = fn
        self.requested = compile_enabled(enabled)
        self.compiled = False
        self.fallback_reason: str | None = None if self.requested else "disabled"
        self.first_call_seconds: float | None = None
        self._impl: Callable[..., Any] = fn
        if self.requested:
            try:
                # dynamo keys its cache on the code object: every closure made by one factory (a rate
                # per grid, dtype, diffusivity) shares it, so allow more than the default 8 variants
                torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
                self._impl = torch.compile(fn, dynamic=dynamic, fullgraph=True)
                self.compiled = True
            except Exception as err:  # pragma: no cover - depends on the platform
                self._fallback(err)

    def _fallback(self, err: Exception) -> None:
        self.compiled = False
        self.fallback_reason = f"{type(err).__name__}: {err}"[:300]
        self._impl = self.fn
        warnings.warn(f"torch.compile unavailable, running eager ({self.fallback_reason})", RuntimeWarning,
                      stacklevel=3)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.first_call_seconds is not None:
            if not self.compiled:
                return self.fn(*args, **kwargs)
            try:
                return self._impl(*args, **kwargs)
            except Exception as err:  # e.g. a recompilation limit reached later on: same result eagerly
                self._fallback(err)
                return self.fn(*args, **kwargs)
        t0 = time.perf_counter()
        try:
            out = self._impl(*args, **kwargs)
        except Exception as err:
            if not self.compiled:
                raise
            self._fallback(err)  # compilation failed on first use: fall back, same result eagerly
            out = self.fn(*args, **kwargs)
        self.first_call_seconds = time.perf_counter() - t0
        return out


_PIN_LOCK = threading.Lock()
_pinned = {"blocks": 0, "saved": 1}


@contextlib.contextmanager
def single_thread(enabled: bool = True) -> Iterator[None]:
    """Run the block on one intra-op thread (``torch.set_num_threads(1)``), restoring the count after.

    For compiled CPU kernels: inductor fixes the OpenMP team size when it compiles, and on a shared
    machine one stalled thread holds every barrier of a fused step (observed: the hall transport at
    91 s on 2 threads under contention vs 1.5 s alone). Compile inside the block so the kernels are
    built for one thread.

    Blocks running at once in several Python threads (a campaign's simulations) share one pin: the
    first to enter saves the count, the last to leave restores it, so that two overlapping blocks do
    not leave torch's default for new threads at one. (Under OpenMP each thread's count is its own,
    seeded from the last value set: simulators/concurrency.py.)
    """
    if not enabled:
        yield
        return
    with _PIN_LOCK:
        if _pinned["blocks"] == 0:
            _pinned["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _pinned["blocks"] += 1
    try:
        yield
    finally:
        with _PIN_LOCK:
            _pinned["blocks"] -= 1
            if _pinned["blocks"] == 0:
                torch.set_num_threads(_pinned["saved"])
