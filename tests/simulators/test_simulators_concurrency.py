"""At most ``max_concurrent`` simulations at once in a process, each on cores // that many torch threads."""
from __future__ import annotations

import threading
import time

import torch

from closedloop.simulators import concurrency
from closedloop.simulators.concurrency import simulation_slot, threads_per_simulation, usable_cores


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
