"""Run campaigns in child processes that can be SIGKILLed, and check what they leave behind.

Each campaign runs in its own process, killed by a fault point (``$CLOSEDLOOP_FAULT_POINT``, see
``closedloop.lab.faults``) or from outside. Starting a fresh interpreter costs about 8 s here
(5–6 s of imports: torch, BoTorch, Prefect; 2 s of Prefect's shutdown), so the children are forked
from a *zygote*: one interpreter that imports closedloop and Prefect once, starts no thread, and
forks a child per run. A child is a separate process, with its own Prefect client, exactly as
killable as a fresh one; it talks to the shared Prefect test server through ``PREFECT_API_URL``
(an ephemeral server per process would cost another 8 s each and be orphaned by every SIGKILL).
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from tests.conftest import ROOM, fast_config_text

# Forks one child per job line read on stdin; writes {"pid": …} then {"status": …} per job.
ZYGOTE = r"""
import json, os, sys, traceback
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import closedloop.flows.campaign as flows
import threading
assert threading.active_count() == 1, "the zygote must not start threads before forking"
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ.update(job["env"])
            state = flows.campaign(job["config"], job["dir"], job.get("rounds"))
            with open(job["result"], "w") as f:
                json.dump(state, f)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
"""

DETERMINISTIC = ["case_id", "round", "status", "strategy", "parameters", "validated_by", "error"]
NUMERIC = ["rel_l2", "log_rel_l2"]


def tiny_config(tmp_path: Path, rounds: int = 2) -> Path:
    """The smoke campaign made small: 40 s horizon, 3 + 2 cases, a few epochs, a small planner."""
    scenario = tmp_path / "room.toml"
    text = ROOM.read_text()
    assert "horizon = 120.0" in text
    scenario.write_text(text.replace("horizon = 120.0", "horizon = 40.0"))
    cfg = fast_config_text(rounds=str(rounds), initial_cases="3", batch_size="2", hidden_channels="4",
                           epochs="2", warm_start_epochs="2", tbptt_steps="2", num_restarts="2",
                           raw_samples="16", mc_samples="16", retries="0")
    cfg = cfg.replace(f'scenario = "{ROOM.as_posix()}"', f'scenario = "{scenario.as_posix()}"')
    path = tmp_path / "crash.toml"
    path.write_text(cfg)
    return path


@dataclass
class Run:
    code: int  # 0 finished, -9 killed by SIGKILL, 1 raised
    state: dict | None
    log: str
    seconds: float

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


class Zygote:
    """A pre-imported interpreter that forks one campaign process per :meth:`run`."""

    def __init__(self, api_url: str, workdir: Path):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "CLOSEDLOOP_FLOW_CACHE": "off", "PREFECT_LOGGING_LEVEL": "WARNING",
                    "PREFECT_LOGGING_TO_API_ENABLED": "false", "PREFECT_HOME": str(workdir / "prefect-home"),
                    # one thread each: no OpenMP pool to fork, no fight with the test server for 2 cores
                    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        for key in ("CLOSEDLOOP_FAULT_POINT", "CLOSEDLOOP_FAULT_LOG"):
            self.env.pop(key, None)
        self.stderr = open(workdir / "zygote.err", "ab")
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=self.env, text=True, bufsize=1)
        self.count = 0

    def _read(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"campaign child gave no answer in {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"zygote died: {(self.workdir / 'zygote.err').read_text()[-3000:]}")
        return json.loads(line)

    def run(self, config: Path, directory: Path, fault: str | None = None, events: Path | None = None,
            rounds: int | None = None, kill_after: float | None = None, timeout: float = 240) -> Run:
        """Run the campaign flow in a child; ``fault`` arms a fault point, ``kill_after`` a timer."""
        self.count += 1
        log = self.workdir / f"run{self.count:03d}.log"
        result = self.workdir / f"run{self.count:03d}.json"
        env = {"CLOSEDLOOP_FAULT_POINT": fault or "", "CLOSEDLOOP_FAULT_LOG": str(events or "")}
        job = {"config": str(config), "dir": str(directory), "rounds": rounds, "env": env,
               "log": str(log), "result": str(result)}
        t0 = time.perf_counter()
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        pid = self._read(30)["pid"]
        try:
            if kill_after is not None:
                try:
                    status = self._read(kill_after)
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    status = self._read(timeout)
            else:
                status = self._read(timeout)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            raise
        state = json.loads(result.read_text()) if result.exists() else None
        return Run(code=status["status"], state=state, log=log.read_text() if log.exists() else "",
                   seconds=time.perf_counter() - t0)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.stderr.close()


# ------------------------------------------------------------------------------------- checks
def temp_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.tmp"))


def check_files_load(directory: Path) -> None:
    """Every case file and checkpoint present is whole: it loads (temporary files aside)."""
    from closedloop.lab.store import read_case

    for path in sorted((directory / "cases").glob("*.parquet")):
        case = read_case(path)
        assert torch.isfinite(case.plane).all(), path
        pd.read_parquet(path)
    for path in sorted((directory / "models").glob("*.pt")):
        ckpt = torch.load(path, weights_only=True)
        assert {"spec", "state_dict", "trained_on"} <= set(ckpt), path
    if (directory / "models" / "index.json").exists():
        json.loads((directory / "models" / "index.json").read_text())
    if (directory / "campaign.json").exists():
        json.loads((directory / "campaign.json").read_text())


def check_ledger(directory: Path) -> pd.DataFrame:
    """The ledger reads, each case once, statuses valid; every done case with a checksum has its file."""
    from closedloop.lab.store import STATUSES, CampaignStore, file_sha256

    store = CampaignStore(directory)
    ledger = store.read_ledger()
    assert ledger["case_id"].is_unique, ledger["case_id"].tolist()
    assert set(ledger["status"]) <= set(STATUSES)
    for _, row in ledger.iterrows():
        path = store.case_path(row["case_id"])
        if row["status"] == "done" and not pd.isna(row["case_sha256"]):
            assert path.is_file() and file_sha256(path) == row["case_sha256"], row["case_id"]
        if row["status"] == "failed":
            assert not path.exists()
        if not pd.isna(row["rel_l2"]):
            assert row["status"] == "done" and path.is_file()
    # rounds are filled in order: no round starts before the one before it has a checkpoint
    for r in sorted(ledger["round"].unique()):
        if r > 0:
            assert (directory / "models" / f"round_{r - 1:03d}.pt").is_file(), f"round {r} before round {r - 1} ended"
    return ledger


def check_final(directory: Path, reference: Path) -> pd.DataFrame:
    """A finished campaign: whole files, no temporaries, the lock released, and on every
    deterministic column the same ledger (and the same weights) as the uninterrupted run."""
    check_files_load(directory)
    ledger = check_ledger(directory)
    assert temp_files(directory) == [], temp_files(directory)
    assert (directory / "campaign.lock").read_text() == ""
    ref = pd.read_parquet(reference / "ledger.parquet")
    got = pd.read_parquet(directory / "ledger.parquet")
    assert set(got["status"]) == {"done"} and got["case_sha256"].notna().all()
    pd.testing.assert_frame_equal(got[DETERMINISTIC].reset_index(drop=True), ref[DETERMINISTIC].reset_index(drop=True))
    pd.testing.assert_frame_equal(got[NUMERIC], ref[NUMERIC], rtol=1e-10, atol=0)
    names = sorted(p.name for p in (reference / "models").glob("*.pt"))
    assert sorted(p.name for p in (directory / "models").glob("*.pt")) == names
    for name in names:
        a = torch.load(directory / "models" / name, weights_only=True)
        b = torch.load(reference / "models" / name, weights_only=True)
        assert a["trained_on"] == b["trained_on"], name
        for key, value in b["state_dict"].items():
            assert torch.allclose(a["state_dict"][key].double(), value.double(), rtol=1e-10, atol=1e-12), (name, key)
    state = json.loads((directory / "campaign.json").read_text())
    assert state["status"] == "finished" and state["repairs"] == []
    return ledger


def simulations(events: Path) -> tuple[Counter, Counter, list[str]]:
    """(starts, ends, violations) per case id from a fault log: a violation is a simulation started
    again after one finished (its case file was written)."""
    starts, ends, violations, _ = _read_simulations(events)
    return starts, ends, violations


def _read_simulations(events: Path) -> tuple[Counter, Counter, list[str], dict[str, str]]:
    starts: Counter = Counter()
    ends: Counter = Counter()
    violations = []
    last_start: dict[str, str] = {}  # case id -> pid of its last 'simulate:start'
    if not events.exists():
        return starts, ends, violations, last_start
    for line in events.read_text().splitlines():
        pid, name, *detail = line.split(" ", 2)
        case = detail[0] if detail else ""
        if name == "simulate:start":
            if ends[case]:
                violations.append(f"{case} started again in pid {pid} after it had finished")
            starts[case] += 1
            last_start[case] = pid
        elif name == "simulate:end":
            ends[case] += 1
    return starts, ends, violations, last_start


def check_simulated_once(events: Path, ledger: pd.DataFrame) -> None:
    """Every done case was simulated, none twice after its file was written.

    A kill in one thread can land between another thread's case file rename and that thread's
    'simulate:end': the file is whole, no end is logged, and the next run reuses it. Such a case
    must have been started last by a process that was killed, never by the one that finished."""
    starts, ends, violations, last_start = _read_simulations(events)
    assert violations == []
    assert all(n == 1 for n in ends.values()), ends
    done = set(ledger.loc[ledger["status"] == "done", "case_id"])
    ended = {c for c, n in ends.items() if n}
    assert ended <= done, ended - done
    final_pid = events.read_text().splitlines()[-1].split(" ", 1)[0]
    unlogged = done - ended
    assert all(c in last_start and last_start[c] != final_pid for c in unlogged), (unlogged, last_start, final_pid)
