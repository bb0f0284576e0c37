"""At most ``max_concurrent`` simulations at once in a process, each on cores // that many torch threads."""
from __future__ import annotations

import threading
import time

import torch

from closedloop.simulators import concurrency
from closedloop.simulators.concurrency import (
    own_threads,
    simulation_slot,
    threads_beside,
    threads_per_simulation,
    usable_cores,
)


def test_slots_bound_how_many_run_at_once_and_threads_are_restored():
    before = torch.get_num_threads()
    running, peak, seen = [0], [0], []
    lock = threading.Lock()

    def one():
        with simulation_slot(2) as threads:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                seen.append((threads, torch.get_num_threads()))
            time.sleep(0.05)
            with lock:
                running[0] -= 1

    workers = [threading.Thread(target=one) for _ in range(7)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert peak[0] == 2
    expected = max(1, usable_cores() // 2)
    assert all(t == expected and n == expected for t, n in seen)
    assert torch.get_num_threads() == before and concurrency._active == 0


def test_default_is_the_usable_cores():
    assert concurrency.concurrent_limit(None) == usable_cores()
    assert threads_per_simulation(None) == 1
    assert threads_per_simulation(1) == usable_cores()


def test_own_threads_sets_one_threads_count_and_restores_it():
    """The count is the calling thread's: while a worker's block holds 1, the main thread's count is
    unchanged; each is restored after its block (None leaves it as it is)."""
    before = torch.get_num_threads()
    inside, release, seen = threading.Event(), threading.Event(), {}

    def worker():
        with own_threads(1):
            seen["inside"] = torch.get_num_threads()
            inside.set()
            release.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(10)
    seen["main_meanwhile"] = torch.get_num_threads()
    release.set()
    t.join()
    assert seen == {"inside": 1, "main_meanwhile": before}
    assert torch.get_num_threads() == before
    with own_threads(None):
        assert torch.get_num_threads() == before
    with own_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_beside_simulations_the_cores_they_leave_and_at_least_one():
    cores = usable_cores()
    assert threads_beside(0) == cores
    assert threads_beside(cores) == 1 and threads_beside(cores + 5) == 1
