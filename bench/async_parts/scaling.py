"""A discrete-event model of the synchronous and the asynchronous campaign beyond this machine.

``replay(durations, workers=(8, 32, 128))`` replays task durations measured in the 1 + 1 setting
(bench/async_campaign.py) with N simulation workers, one trainer and one proposer (the campaign
process's planner), at a budget of ``rounds × N`` cases, both modes on the same case durations:

- **sync**: rounds of N cases. A round's batch is proposed (N·p on the proposer), its N cases run at
  once, the round waits for the slowest, then one training on every done case; R rounds.
- **async**: the initial N cases are proposed as one batch (N·p), then every finished case is
  replaced: its proposal waits for the proposer (FIFO, p each) and starts on the freed worker, until
  the budget is started. The trainer, whenever idle and some done case is not yet in its newest
  checkpoint, trains on every done case. The campaign ends when the last case is done and a
  checkpoint has trained on all of them (both modes end with a model trained on every case).

Training time is linear in the cases trained on, T(n) = a + b·n for a warm start and f·T(n) for the
first training (the full schedule), f, a, b fitted to the measured trainings (the cases a training
took: the simulations done when it started). p is the measured time from a case's end to its
replacement's start in async mode (validation, proposal, dispatch); a case's simulation time is drawn
(seeded, with replacement) from the measured ones, case i the same in both modes.

Reported per worker count and mode: ``wall_s``; ``worker_utilisation`` = busy simulation seconds /
(wall × N); ``trainer_utilisation`` = training seconds / wall; ``proposer_utilisation``; and for
async the ``staleness`` of the checkpoint each proposal used (when the replacement is asked for:
cases done then minus the cases the newest checkpoint trained on; mean, max, and as a fraction of the
cases done), ``trainings`` and
``drain_s`` (from the last simulation's end to the final checkpoint: the training on the critical
path). The single trainer is the bottleneck where its utilisation nears 1 and the staleness grows
with N (``trainer_bound``: utilisation ≥ 0.9).

Input, either the bench's measured runs ``{"sync": M, "async": M}`` with
``M = {"simulations": [{"start", "end", "worker"}], "trainings": [{"start", "end", ...}], "wall_s"}``
(seconds from the flow's start), or the fitted :class:`TaskDurations` itself. Pure Python (heapq),
deterministic for a seed.
"""
from __future__ import annotations

import heapq
import random
import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TaskDurations:
    simulation_seconds: list[float]  # measured simulation times, drawn from with replacement
    proposal_seconds: float  # p: a case's end to its replacement's start (the proposer's time per case)
    training_fixed_s: float  # a in T(n) = a + b·n (warm start)
    training_per_case_s: float  # b
    first_training_factor: float = 1.0  # f: the first training (full schedule) takes f·T(n)

    def training(self, cases: int, first: bool) -> float:
        t = self.training_fixed_s + self.training_per_case_s * cases
        return t * self.first_training_factor if first else t


def _done_before(sims: list[dict], t: float) -> int:
    return sum(1 for s in sims if s["end"] <= t + 1e-9)


def _line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares a + b·n through (n, t), with a, b ≥ 0 (a proportional fit when a would be < 0)."""
    if not points:
        return 0.0, 0.0
    ns = [n for n, _ in points]
    ts = [t for _, t in points]
    if len(set(ns)) < 2:
        return statistics.fmean(ts), 0.0
    mn, mt = statistics.fmean(ns), statistics.fmean(ts)
    b = sum((n - mn) * (t - mt) for n, t in points) / sum((n - mn) ** 2 for n in ns)
    a = mt - b * mn
    if b < 0:
        return mt, 0.0
    if a < 0:
        return 0.0, sum(n * t for n, t in points) / sum(n * n for n in ns)
    return a, b


def task_durations(measured: dict) -> TaskDurations:
    """Fit :class:`TaskDurations` to the bench's measured runs (see the module docstring)."""
    sims_all, warm, firsts, gaps = [], [], [], []
    for mode, run in measured.items():
        sims = sorted(run.get("simulations", []), key=lambda s: s["start"])
        sims_all += [s["end"] - s["start"] for s in sims]
        for k, tr in enumerate(sorted(run.get("trainings", []), key=lambda s: s["start"])):
            point = (_done_before(sims, tr["start"]), tr["end"] - tr["start"])
            (firsts if k == 0 else warm).append(point)
        if mode == "async":
            by_worker: dict[str, list[dict]] = {}
            for s in sims:
                by_worker.setdefault(str(s.get("worker")), []).append(s)
            gaps += [b["start"] - a["end"] for w in by_worker.values() for a, b in zip(w, w[1:])]
    if not sims_all:
        raise ValueError("durations: no simulation intervals to replay")
    a, b = _line(warm) if warm else _line(firsts)
    factors = [t / (a + b * n) for n, t in firsts if a + b * n > 0] if warm else []
    p = max(statistics.median(gaps), 0.0) if gaps else 0.0
    return TaskDurations(simulation_seconds=sims_all, proposal_seconds=p, training_fixed_s=a, training_per_case_s=b,
                         first_training_factor=statistics.fmean(factors) if factors else 1.0)


class _Proposer:
    """The campaign process's planner: proposals one at a time, first come first served."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.free_at, self.busy = seconds, 0.0, 0.0

    def propose(self, t: float, cases: int = 1) -> float:
        """When ``cases`` proposals asked for at ``t`` are ready."""
        start = max(t, self.free_at)
        self.free_at = start + cases * self.seconds
        self.busy += cases * self.seconds
        return self.free_at


def replay_sync(d: TaskDurations, workers: int, rounds: int, case_seconds: list[float]) -> dict:
    proposer = _Proposer(d.proposal_seconds)
    t, busy, train_s = 0.0, 0.0, 0.0
    for r in range(rounds):
        start = proposer.propose(t, workers)
        batch = case_seconds[r * workers:(r + 1) * workers]
        busy += sum(batch)
        train = d.training(workers * (r + 1), first=r == 0)
        train_s += train
        t = start + max(batch) + train
    return {"wall_s": t, "worker_utilisation": busy / (t * workers), "trainer_utilisation": train_s / t,
            "proposer_utilisation": proposer.busy / t, "trainings": rounds, "cases": rounds * workers}


def replay_async(d: TaskDurations, workers: int, rounds: int, case_seconds: list[float]) -> dict:
    budget = rounds * workers
    proposer = _Proposer(d.proposal_seconds)
    events: list[tuple[float, int, str, int]] = []  # (time, tie-break, kind, payload)
    seq = 0

    def push(time: float, kind: str, payload: int) -> None:
        nonlocal seq
        heapq.heappush(events, (time, seq, kind, payload))
        seq += 1

    ready = proposer.propose(0.0, workers)
    for i in range(workers):
        push(ready, "start", i)
    started, done, busy, train_s = workers, 0, 0.0, 0.0
    trained_on, training, trainings, last_sim_end = 0, False, 0, 0.0
    stale: list[tuple[int, int]] = []  # (cases done, cases in the checkpoint used) per proposal
    t = 0.0

    def maybe_train(now: float) -> None:
        nonlocal training, train_s, trainings
        if not training and done > trained_on:
            seconds = d.training(done, first=trainings == 0)
            training, train_s, trainings = True, train_s + seconds, trainings + 1
            push(now + seconds, "trained", done)

    while events:
        t = events[0][0]
        while events and events[0][0] == t:  # what happens at one instant is seen together
            _, _, kind, payload = heapq.heappop(events)
            if kind == "start":
                busy += case_seconds[payload]
                push(t + case_seconds[payload], "end", payload)
            elif kind == "end":
                done, last_sim_end = done + 1, t
                if started < budget:
                    stale.append((done, trained_on))
                    push(proposer.propose(t), "start", started)
                    started += 1
            else:  # a checkpoint trained on ``payload`` cases
                training, trained_on = False, payload
        maybe_train(t)
    lags = [n - m for n, m in stale]
    return {"wall_s": t, "worker_utilisation": busy / (t * workers), "trainer_utilisation": train_s / t,
            "proposer_utilisation": proposer.busy / t, "trainings": trainings, "cases": budget,
            "drain_s": t - last_sim_end,
            "staleness": {"mean_cases": statistics.fmean(lags) if lags else 0.0, "max_cases": max(lags, default=0),
                          "mean_fraction": statistics.fmean((n - m) / n for n, m in stale) if stale else 0.0},
            "trainer_bound": train_s / t >= 0.9}


def replay(durations: dict | TaskDurations, workers: tuple[int, ...] = (8, 32, 128), rounds: int = 4,
           seed: int = 0) -> dict:
    """Both modes at each worker count (see the module docstring); deterministic for ``seed``."""
    d = durations if isinstance(durations, TaskDurations) else task_durations(durations)
    if rounds < 1 or any(n < 1 for n in workers):
        raise ValueError(f"rounds and workers: must be ≥ 1, got rounds={rounds}, workers={workers}")
    out: dict = {"model": asdict(d) | {"simulation_seconds": {"n": len(d.simulation_seconds),
                                                              "mean": statistics.fmean(d.simulation_seconds),
                                                              "max": max(d.simulation_seconds)}},
                 "rounds": rounds, "seed": seed, "workers": {}}
    for n in workers:
        rng = random.Random(f"{seed}:{n}")
        cases = [rng.choice(d.simulation_seconds) for _ in range(rounds * n)]
        sync, asyn = replay_sync(d, n, rounds, cases), replay_async(d, n, rounds, cases)
        out["workers"][str(n)] = {"sync": sync, "async": asyn, "wall_ratio": sync["wall_s"] / asyn["wall_s"]}
    return out


def table(result: dict) -> list[str]:
    """The replay as text rows: workers, wall and utilisations of both modes, staleness."""
    rows = ["workers  wall sync/async (s)  util sync/async  trainer sync/async  staleness (cases, share)"]
    for n, r in result["workers"].items():
        s, a = r["sync"], r["async"]
        rows.append(f"{n:>7}  {s['wall_s']:>8.0f} / {a['wall_s']:<8.0f}  {s['worker_utilisation']:.2f} / "
                    f"{a['worker_utilisation']:.2f}      {s['trainer_utilisation']:.2f} / "
                    f"{a['trainer_utilisation']:.2f}"
                    f"         {a['staleness']['mean_cases']:.1f}, {a['staleness']['mean_fraction']:.2f}"
                    + ("  trainer-bound" if a["trainer_bound"] else ""))
    return rows
