"""Step timings: who wants to know how long the science steps take registers a listener.

The campaign's steps mark their science with :class:`timed` (``simulation`` in ``run_case`` when
it simulates, ``validation``, ``training``, ``planning``, ``reporting`` for the round report's
figures); every registered listener is called with ``(step, start, end)``, wall-clock seconds
(``time.time()``), when the block ends, normally or by an exception. With no listener, a timed
block costs a check of an empty tuple and reads no clock. Listeners may be added and removed from
any thread, and are called in the thread that ran the step (simulations run in worker threads),
so a listener that collects must be thread-safe itself.

    intervals = []
    with timing.listening(lambda step, start, end: intervals.append((step, start, end))):
        campaign(config_path="configs/smoke.toml")
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Self

Listener = Callable[[str, float, float], None]

_listeners: tuple[Listener, ...] = ()  # replaced whole (copy on write), so readers need no lock
_lock = threading.Lock()


def add_listener(listener: Listener) -> None:
    """Call ``listener(step, start, end)`` after every timed step, in any thread, until removed."""
    global _listeners
    with _lock:
        _listeners = (*_listeners, listener)


def remove_listener(listener: Listener) -> None:
    """Stop calling ``listener`` (one registration of it); ValueError if it was not registered."""
    global _listeners
    with _lock:
        found = list(_listeners)
        found.remove(listener)
        _listeners = tuple(found)


def round_started(round_index: int) -> None:
    """Tell the listeners that keep time by round (those with a ``round_started`` method) that a
    campaign round starts now."""
    for listener in _listeners:
        mark = getattr(listener, "round_started", None)
        if mark is not None:
            mark(round_index)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[Listener]:
    """``listener`` registered for the ``with`` block."""
    add_listener(listener)
    try:
        yield listener
    finally:
        remove_listener(listener)


class timed(contextlib.ContextDecorator):
    """Time a block (``with timed("training"):``) or every call of a function (``@timed("planning")``)
    and tell the listeners registered when it ends."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.start: float | None = None

    def _recreate_cm(self) -> timed:
        return timed(self.step)  # one per call: a decorated function may run in several threads at once

    def __enter__(self) -> Self:
        self.start = time.time() if _listeners else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.start is None:
            return
        end = time.time()
        for listener in _listeners:
            listener(self.step, self.start, end)
