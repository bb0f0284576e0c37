"""How many simulations run at once in one process, and how many torch threads each gets.

    slots    = max_concurrent, default the cores this process may use (``os.sched_getaffinity``)
    threads  = max(1, cores // slots) torch intra-op threads while any simulation runs
    beside   = max(1, cores − W) torch threads for work that runs beside W simulations (an async
               campaign's training, validations and proposals)

Eight simulations on two cores, each asking for two threads, were 48× slower a case than one after
another (the first round of configs/hall.toml): oversubscription, and every case solving the same flow.
:func:`simulation_slot` holds one of ``slots`` places (a process-wide semaphore, so a caller that
submits more simulations than slots waits instead of oversubscribing) and sets the thread count while
simulations run, restoring it when the last one ends. The flow cache's lock
(``simulators/flow_cache.py``) makes concurrent cases of one geometry solve its flow once.

Torch's thread count is per Python thread where torch uses OpenMP (libgomp's nthreads; torch seeds a
new thread's count from the last value any thread set), and every Python thread that runs a parallel
kernel keeps an OpenMP team of its own. Teams that together hold more threads than cores wait at every
barrier for a thread the OS has parked: a hall training in a second thread while the first thread's team
existed took 68-75 s for two epochs of each stage against 34-37 s alone (docs/operations.md).
:func:`own_threads` sets one thread's count for a block.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import torch

_lock = threading.Lock()
_semaphores: dict[int, threading.BoundedSemaphore] = {}
_active = 0
_saved_threads: int | None = None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        return max(1, os.cpu_count() or 1)


def concurrent_limit(max_concurrent: int | None) -> int:
    """Simulations at once: ``max_concurrent``, default the usable cores."""
    return max_concurrent if max_concurrent is not None else usable_cores()


def threads_per_simulation(max_concurrent: int | None) -> int:
    return max(1, usable_cores() // concurrent_limit(max_concurrent))


def threads_beside(workers: int) -> int:
    """Torch threads for work running beside ``workers`` simulations: the cores they leave, at least 1."""
    return max(1, usable_cores() - workers)


def current_threads() -> int:
    """The calling thread's torch intra-op thread count."""
    return torch.get_num_threads()


@contextlib.contextmanager
def own_threads(threads: int | None) -> Iterator[None]:
    """This Python thread's torch on ``threads`` intra-op threads for the block, its count restored
    after (other threads keep theirs); None leaves it as it is."""
    if threads is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def simulation_slot(max_concurrent: int | None = None) -> Iterator[int]:
    """Hold one of ``concurrent_limit(max_concurrent)`` slots; torch runs on ``threads_per_simulation``
    threads until the last simulation in the process ends. Yields that thread count."""
    global _active, _saved_threads
    limit = concurrent_limit(max_concurrent)
    with _lock:
        semaphore = _semaphores.setdefault(limit, threading.BoundedSemaphore(limit))
    threads = threads_per_simulation(max_concurrent)
    with semaphore:
        with _lock:
            if _active == 0:
                _saved_threads = torch.get_num_threads()
            _active += 1
            torch.set_num_threads(threads)
        try:
            yield threads
        finally:
            with _lock:
                _active -= 1
                if _active == 0 and _saved_threads is not None:
                    torch.set_num_threads(_saved_threads)
                    _saved_threads = None
