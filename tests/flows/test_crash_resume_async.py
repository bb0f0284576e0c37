"""Kill-anywhere resume in async mode: SIGKILL the asynchronous campaign at named points, rerun it,
and it finishes the same budget with no duplicate case id, no done case lost, and no case simulated
again after it had finished (a case in flight at a kill runs again, once to its end).

The final ledger need not equal a synchronous run's, nor another async run's (which case finishes
first decides what is proposed next); what is checked is what the ledger promises.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import prefect.settings
import pytest

from closedloop.lab.campaign import scheduler
from closedloop.lab.store import CampaignStore
from tests.flows.asynclab import tiny_async_config
from tests.flows.crashlab import (
    Zygote,
    check_simulated_once,
    check_files_load,
    check_ledger,
    simulations,
    temp_files,
)
from tests.flows.test_crash_resume import check_told_crashed

pytestmark = pytest.mark.usefixtures("prefect_harness")

# Hit counts are per process. The tiny campaign: 3 initial cases, 8 in all, 2 running + 1 waiting.
CHAIN = ["rename:ledger@1",       # the initial design's proposals in a temporary file
         "simulate:progress@5",   # two simulations in flight
         "simulate:end@2",        # a case file written, the ledger does not know
         "propose:planned@1",     # a replacement computed, not stored
         "simulate:end@1",        # a later case written, not recorded
         "train:epoch@2",         # round 0 training beside the simulations
         "checkpoint:written@1",  # a checkpoint in place, its checksum not indexed
         "rename:report@1",       # the round's report, published when the next run starts
         "rename:state@2"]        # the final campaign.json        # the final campaign.json


def done_cases(directory: Path) -> dict[str, str]:
    ledger = pd.read_parquet(directory / "ledger.parquet") if (directory / "ledger.parquet").exists() else None
    if ledger is None:
        return {}
    done = ledger[ledger["status"] == "done"]
    return dict(zip(done["case_id"], done["case_sha256"]))


def test_async_campaign_killed_again_and_again_finishes_its_budget(tmp_path):
    config = tiny_async_config(tmp_path / "config", max_cases=8)
    directory = tmp_path / "camp"
    events = tmp_path / "events.log"
    zygote = Zygote(prefect.settings.PREFECT_API_URL.value(), tmp_path / "zygote")
    try:
        kept: dict[str, str] = {}
        crashed = 0
        for i, fault in enumerate(CHAIN):
            run = zygote.run(config, directory, fault=fault, events=events)
            assert run.killed, f"kill {i} ({fault}) was not reached: exit {run.code}\n{run.log[-3000:]}"
            check_files_load(directory)
            check_ledger(directory)
            crashed += check_told_crashed(directory)
            now = done_cases(directory)
            assert {c: now.get(c) for c in kept} == kept, f"a done case was lost or changed by kill {i} ({fault})"
            kept = now
        run = zygote.run(config, directory, events=events)
        assert run.code == 0, run.log[-3000:]
    finally:
        zygote.close()
    state = run.state
    assert state["status"] == "finished" and state["stop_reason"] == "simulation budget spent (8 of 8 cases)"
    history = [h["status"] for h in state["history"]]
    assert history.count("crashed") == crashed and history[-1] == "finished", history
    ledger = check_ledger(directory)
    assert temp_files(directory) == [] and (directory / "campaign.lock").read_text() == ""
    assert len(ledger) == 8 and set(ledger["status"]) == {"done"} and ledger["rel_l2"].notna().all()
    assert {c: done_cases(directory)[c] for c in kept} == kept
    check_simulated_once(events, ledger)  # nothing simulated again after it had finished
    starts, _, _ = simulations(events)
    assert all(starts[c] <= 1 + len(CHAIN) for c in starts)
    assert sum(starts.values()) > len(ledger)  # some case in flight at a kill ran again
    final = json.loads((directory / "campaign.json").read_text())
    assert final["rounds_done"] >= 1 and final["repairs"] == []
    # how many rounds ran beside the simulations depends on how long training took against them; what
    # does not is that the closing round's model has seen every done case
    store = CampaignStore(directory)
    newest = scheduler.newest_round(store, final["rounds_budget"])
    assert newest == final["rounds_done"] - 1
    assert scheduler.trained_on(store, newest) == set(ledger["case_id"])
