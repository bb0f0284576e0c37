"""Kill-anywhere resume: SIGKILL the campaign at named points, rerun it, and get the same campaign.

Each kill is a fault point (``closedloop.lab.faults``) armed in a child process, which then dies by
SIGKILL exactly there: between a temporary file and its rename, mid-simulation, between epochs,
after a checkpoint is renamed but before its checksum is indexed, and so on. After every kill the
directory must hold only whole files (temporaries aside) and a consistent ledger; after the final
run, no temporary file, no simulation that had finished run again, and on every deterministic
column the same ledger, and the same weights, as an uninterrupted run with the same seed.

The default suite kills one campaign 13 times in a row, at 13 points spread over both rounds, then
lets it finish; the ``slow`` suite (``pytest -m slow``) kills once per point at each of the 28
points of the catalogue, runs a second chain, kills at random times from outside, and resumes a
directory copied after a kill.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import prefect.settings
import pytest

from tests.flows.crashlab import (Zygote, check_final, check_files_load, check_ledger, check_simulated_once, temp_files,
                                  tiny_config)

pytestmark = pytest.mark.usefixtures("prefect_harness")

# Hit counts are per process: "rename:ledger@2" is the second ledger write of *that* run.
# Round 0 of the tiny campaign: 3 simulations of 4 output times each, 4 epochs; round 1: 2 cases, 2 epochs.
CHAIN = ["propose:planned@1",       # round 0's proposal computed, not stored
         "rename:ledger@1",         # the proposals written to a temporary file, not renamed
         "simulate:progress@6",     # in the middle of the three simulations
         "simulate:end@1",          # a case file written, the ledger does not know
         "rename:ledger@1",         # the simulations' ledger update half done
         "train:epoch@2",           # between two epochs
         "checkpoint:written@1",    # checkpoint in place, its checksum not indexed
         "rename:report@1",         # publishing round 0
         "propose:planned@1",       # round 1: the GP's batch computed, not stored
         "simulate:end@1",          # round 1's first case file written
         "validate:done@1",         # predictions computed, not stored
         "rename:checkpoint@1",     # round 1's checkpoint in a temporary file
         "rename:state@2"]          # the final campaign.json

# A second sequence for the slow suite: the other points that only a resumed run reaches.
SLOW_CHAIN = ["retrain:done@1",      # round 0 complete, not published
              "propose:planned@1",   # round 1's batch
              "simulate:progress@3",  # mid round-1 simulation
              "rename:case@1",       # a round-1 case file not yet renamed
              "rename:ledger@2",     # round 1's simulations half recorded (proposal write is @1)
              "train:epoch@1",       # round 1's warm start, after one epoch
              "rename:index@1",      # round 1's checksum in a temporary index
              "rename:figure@1"]     # publishing round 1

# Every point once, each in a fresh campaign (counts from the start of an uninterrupted run).
SINGLE = ["rename:state@1", "propose:planned@1", "rename:ledger@1", "simulate:start@2", "simulate:progress@5",
          "rename:case@1", "simulate:end@3", "rename:ledger@2", "validate:done@1", "rename:ledger@3",
          "train:epoch@2", "rename:checkpoint@1", "checkpoint:written@1", "rename:index@1", "retrain:done@1",
          "rename:figure@1", "rename:report@1", "propose:planned@2", "rename:ledger@4", "simulate:progress@14",
          "simulate:end@5", "rename:ledger@5", "validate:done@2", "train:epoch@5", "checkpoint:written@2",
          "retrain:done@2", "rename:report@2", "rename:state@2"]


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(prefect.settings.PREFECT_API_URL.value(), tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    return tiny_config(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def reference(zygote, config, tmp_path_factory) -> Path:
    """The uninterrupted campaign (same child processes, same seed)."""
    directory = tmp_path_factory.mktemp("reference") / "camp"
    events = directory.parent / "events.log"
    run = zygote.run(config, directory, events=events)
    assert run.code == 0, run.log[-3000:]
    assert run.state["rounds_done"] == 2
    ledger = check_final(directory, directory)
    check_simulated_once(events, ledger)
    return directory


def kill_then_finish(zygote: Zygote, config: Path, directory: Path, faults: list[str], reference: Path) -> None:
    events = directory.parent / "events.log"
    crashed = 0  # kills that left campaign.json saying 'running': each must be told 'crashed'
    for i, fault in enumerate(faults):
        run = zygote.run(config, directory, fault=fault, events=events)
        assert run.killed, f"kill {i} ({fault}) was not reached: exit {run.code}\n{run.log[-3000:]}"
        # temporaries may be left (by this thread or a concurrent writer); the next start removes them
        check_files_load(directory)
        check_ledger(directory)
        crashed += check_told_crashed(directory)
    run = zygote.run(config, directory, events=events)
    assert run.code == 0, f"after kills {faults}:\n{run.log[-3000:]}"
    assert run.state["status"] == "finished" and run.state["rounds_done"] == 2
    history = [h["status"] for h in run.state["history"]]
    assert history.count("crashed") == crashed and history[-1] == "finished", history
    ledger = check_final(directory, reference)
    check_simulated_once(events, ledger)


def check_told_crashed(directory: Path) -> int:
    """After a kill nothing says 'finished' or 'failed'; a 'running' that no process holds is
    shown crashed by `campaign status`. Returns 1 when campaign.json says 'running'."""
    from typer.testing import CliRunner

    from closedloop.cli import app
    from closedloop.lab.lock import is_held

    assert not is_held(directory)
    path = directory / "campaign.json"
    if not path.exists():
        return 0
    status = json.loads(path.read_text())["status"]
    assert status in ("running", "crashed"), status
    if status == "running" and (directory / "ledger.parquet").exists():
        shown = " ".join(CliRunner().invoke(app, ["campaign", "status", str(directory)]).output.split())
        assert "status: crashed (campaign.json says running" in shown, shown
    return int(status == "running")


def test_killed_again_and_again_ends_like_an_uninterrupted_run(zygote, config, reference, tmp_path):
    kill_then_finish(zygote, config, tmp_path / "camp", CHAIN, reference)


@pytest.mark.slow
def test_killed_again_and_again_in_the_second_round(zygote, config, reference, tmp_path):
    kill_then_finish(zygote, config, tmp_path / "camp", SLOW_CHAIN, reference)


@pytest.mark.slow
@pytest.mark.parametrize("fault", SINGLE)
def test_killed_once_at_each_point(zygote, config, reference, tmp_path, fault):
    directory = tmp_path / "camp"
    kill_then_finish(zygote, config, directory, [fault], reference)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_at_random_times_from_outside(zygote, config, reference, tmp_path, seed):
    """SIGKILL from outside at random moments (wherever the process is, Prefect calls included)."""
    directory = tmp_path / "camp"
    events = tmp_path / "events.log"
    rng = random.Random(seed)
    kills = 0
    for _ in range(4):
        run = zygote.run(config, directory, events=events, kill_after=rng.uniform(0.5, 6.0))
        if not run.killed:
            assert run.code == 0, run.log[-3000:]
            break
        kills += 1
        check_files_load(directory)
        check_ledger(directory)
    run = zygote.run(config, directory, events=events)
    assert run.code == 0, run.log[-3000:]
    ledger = check_final(directory, reference)
    check_simulated_once(events, ledger)
    assert kills >= 1


def test_the_chains_and_the_slow_list_cover_the_catalogue():
    from closedloop.lab.faults import POINTS, parse

    named = {parse(f)[0] for f in SINGLE}
    expected = {p for p in POINTS if not p.startswith("rename:")}
    expected |= {f"rename:{label}" for label in ("ledger", "case", "checkpoint", "index", "state", "figure", "report")}
    assert named == expected
    assert len(SINGLE) >= 20
    assert len(CHAIN) >= 8


@pytest.mark.slow
def test_a_copied_campaign_resumes_too(zygote, config, reference, tmp_path):
    """A directory copied while a run was killed mid-write (temporaries included) resumes elsewhere."""
    first = tmp_path / "first"
    run = zygote.run(config, first, fault="rename:case@2")
    assert run.killed and temp_files(first)
    second = tmp_path / "second"
    shutil.copytree(first, second)
    run = zygote.run(config, second)
    assert run.code == 0, run.log[-3000:]
    check_final(second, reference)
