"""Where a campaign's time goes: wall seconds by step and round (``campaign.json``, ``campaign status``).

A :class:`StepClock` listens to the timed steps (lab/timing.py: ``simulation``, ``validation``,
``training``, ``planning``, ``reporting``) while a campaign runs. Round ``r`` runs from
:meth:`StepClock.round_started` ``(r)`` to the next round's start (or :meth:`StepClock.stop`). For
each round and step it gives the *wall* seconds during which at least one interval of the step ran
(the union of the intervals: four simulations side by side for 2 s count 2 s, not 8), and

    orchestration = wall − |∪ all steps' intervals|

the time no timed step ran: Prefect's task and flow bookkeeping, ledger reads and writes, waiting.
In async mode the steps overlap one another, so the steps' seconds may add up to more than the wall.
Simulations that run in other processes (Dask workers) are seen only through the loop's timed
``simulation`` span of a sync round's batch; async mode on Dask counts them as orchestration.

Seconds add up across the runs of a campaign (a resumed round keeps the time spent before the stop):
:func:`add_seconds` merges this run's with what ``campaign.json`` held.
"""
from __future__ import annotations

import threading
import time

STEPS = ("simulation", "validation", "training", "planning", "reporting")


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """|∪ [start, end]|: the length covered by at least one interval."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


class StepClock:
    """A timing listener (``timing.listening(clock)``) that keeps each step's intervals by round."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._intervals: list[tuple[str, float, float]] = []
        self._starts: list[tuple[int, float]] = []  # (round, time), in order
        self._stopped: float | None = None

    def __call__(self, step: str, start: float, end: float) -> None:
        with self._lock:
            self._intervals.append((step, start, end))

    def round_started(self, round_index: int, at: float | None = None) -> None:
        """Round ``round_index`` starts now (the previous one ends); ``timing.round_started`` calls it."""
        with self._lock:
            self._starts.append((round_index, time.time() if at is None else at))

    def stop(self, at: float | None = None) -> None:
        with self._lock:
            self._stopped = time.time() if at is None else at

    def seconds(self) -> dict[str, dict[str, float]]:
        """``{round: {"wall": s, STEP: s, …, "orchestration": s}}`` for the rounds this clock saw
        start (keys are strings: the shape ``campaign.json`` stores)."""
        with self._lock:
            starts, intervals = list(self._starts), list(self._intervals)
            end_all = self._stopped if self._stopped is not None else time.time()
        out: dict[str, dict[str, float]] = {}
        for i, (r, t0) in enumerate(starts):
            t1 = starts[i + 1][1] if i + 1 < len(starts) else end_all
            # an interval is cut to the round's span: a training that straddles a boundary counts in both
            mine = [(s, min(max(a, t0), t1), min(max(b, t0), t1)) for s, a, b in intervals]
            row = {"wall": max(t1 - t0, 0.0)}
            for step in sorted({s for s, _, _ in mine} | set(STEPS)):
                row[step] = union_seconds([(a, b) for s, a, b in mine if s == step and b > a])
            row["orchestration"] = max(row["wall"] - union_seconds([(a, b) for _, a, b in mine if b > a]), 0.0)
            key = str(r)
            out[key] = add_row(out.get(key, {}), row)
        return out


def add_row(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: float(a.get(k, 0.0)) + float(b.get(k, 0.0)) for k in {*a, *b}}


def add_seconds(previous: dict[str, dict[str, float]] | None,
                current: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Seconds by round of earlier runs plus this run's (a round resumed adds up)."""
    out = {r: dict(row) for r, row in (previous or {}).items()}
    for r, row in current.items():
        out[r] = add_row(out.get(r, {}), row)
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def totals(seconds: dict[str, dict[str, float]]) -> dict[str, float]:
    """The campaign's seconds by step, summed over rounds."""
    out: dict[str, float] = {}
    for row in seconds.values():
        out = add_row(out, row)
    return out
