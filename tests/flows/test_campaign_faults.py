"""Faults inside a running campaign: failing, hanging and NaN simulations; damaged files; the task cache."""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from closedloop.simulators import interface
from closedloop.flows.campaign import campaign
from closedloop.lab import campaign as steps
from closedloop.lab.campaign import learn, simulation
from closedloop.lab.store import CampaignStore, file_sha256, read_case
from tests.flows.crashlab import tiny_config

pytestmark = pytest.mark.usefixtures("prefect_harness")


def with_simulation(config: Path, **settings: str) -> Path:
    """Append settings to the [simulation] table (the config's last table)."""
    text = config.read_text()
    assert text.rstrip().splitlines()[-1].startswith("retries")
    config.write_text(text + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return config


def test_failing_hanging_and_nan_simulations_are_retried_then_recorded(tmp_path, monkeypatch):
    cfg = with_simulation(tiny_config(tmp_path, rounds=1), retry_delay_seconds="0.2", timeout_seconds="0.5")
    cfg.write_text(cfg.read_text().replace("initial_cases = 3", "initial_cases = 4").replace("retries = 0", "retries = 2"))
    out = tmp_path / "camp"
    # Round 0's cases are known in advance (a seeded Sobol design); the two that should succeed are
    # simulated here, outside the 0.5 s timeout, so a busy machine cannot make them time out.
    from closedloop.lab.config import load_campaign_config
    from closedloop.lab.store import empty_ledger

    config = load_campaign_config(cfg)
    scenarios = {s.case_id(): s for s in (steps.scenario_for(config, p)
                                          for p in steps.propose_round(config, empty_ledger(), 0).parameters)}
    raised_id, hung_id, nan_id, good_id = sorted(scenarios)
    results = {cid: interface.reference_simulate(scenarios[cid], device="cpu") for cid in (nan_id, good_id)}
    results[nan_id].plane[-1, 3, 3] = math.nan
    attempts: dict[str, list[float]] = {}

    def faulty(scenario, **kwargs):
        cid = scenario.case_id()
        attempts.setdefault(cid, []).append(time.monotonic())
        if cid == raised_id:
            raise RuntimeError("solver diverged")
        if cid == hung_id:
            while True:  # a hang the timeout must end (the solver is a Python loop, like this one)
                time.sleep(0.01)
        return results[cid]

    monkeypatch.setattr(interface, "reference_simulate", faulty)
    state = campaign(str(cfg), str(out))
    assert state["status"] == "finished" and state["rounds_done"] == 1 and state["cases_failed"] == 3

    ledger = pd.read_parquet(out / "ledger.parquet").set_index("case_id")
    raised, hung, nan, good = raised_id, hung_id, nan_id, good_id
    assert sorted(ledger.index) == sorted(scenarios)
    for cid in (raised, hung, nan):
        assert ledger.loc[cid, "status"] == "failed" and pd.isna(ledger.loc[cid, "rel_l2"])
        assert len(attempts[cid]) == 3 and "(failed 3 attempts)" in ledger.loc[cid, "error"]
        assert not (out / "cases" / f"{cid}.parquet").exists()
    assert "RuntimeError: solver diverged" in ledger.loc[raised, "error"]
    assert "TimeoutError: longer than simulation.timeout_seconds = 0.5 s" in ledger.loc[hung, "error"]
    assert "FloatingPointError" in ledger.loc[nan, "error"] and "plane: 1 NaN, 0 inf" in ledger.loc[nan, "error"]
    # exponential backoff: 0.2 s before the first retry, 0.4 s before the second
    gaps = [b - a for a, b in zip(attempts[raised], attempts[raised][1:])]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps
    # the campaign went on with the case that worked
    assert ledger.loc[good, "status"] == "done" and ledger.loc[good, "rel_l2"] > 0
    assert torch.load(out / "models" / "round_000.pt", weights_only=True)["trained_on"] == [good]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished one-round campaign, copied by each test that damages it."""
    base = tmp_path_factory.mktemp("finished")
    cfg = tiny_config(base, rounds=1)
    state = campaign(str(cfg), str(base / "camp"))
    assert state["status"] == "finished"
    return cfg, base / "camp"


def copy_of(finished, tmp_path) -> Path:
    out = tmp_path / "camp"
    shutil.copytree(finished[1], out)
    return out


def counting_simulate(monkeypatch) -> list[str]:
    real, calls = interface.reference_simulate, []

    def spy(scenario, **kwargs):
        calls.append(scenario.case_id())
        return real(scenario, **kwargs)

    monkeypatch.setattr(interface, "reference_simulate", spy)
    return calls


def test_damaged_case_files_are_set_aside_and_simulated_again(finished, tmp_path, monkeypatch):
    cfg, original = finished
    out = copy_of(finished, tmp_path)
    ids = sorted(pd.read_parquet(out / "ledger.parquet")["case_id"])
    flipped, truncated = out / "cases" / f"{ids[0]}.parquet", out / "cases" / f"{ids[1]}.parquet"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit of rot: the file may still parse, its checksum does not match
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-200])
    checkpoint = (out / "models" / "round_000.pt").read_bytes()

    calls = counting_simulate(monkeypatch)
    state = campaign(str(cfg), str(out))

    assert sorted(calls) == ids[:2]  # exactly the damaged cases, once each
    assert state["status"] == "finished" and len(state["repairs"]) == 2
    assert all("checksum mismatch" in line for line in state["repairs"])
    ledger = CampaignStore(out).read_ledger().set_index("case_id")
    for cid in ids[:2]:
        row = ledger.loc[cid]
        assert row["status"] == "done" and row["case_sha256"] == file_sha256(out / "cases" / f"{cid}.parquet")
        assert "checksum mismatch" in row["error"] and "simulated again" in row["error"]
        # deterministic: the same plane as before the damage
        assert torch.equal(read_case(out / "cases" / f"{cid}.parquet").plane,
                           read_case(original / "cases" / f"{cid}.parquet").plane)
    assert len(list((out / "quarantine").iterdir())) == 2
    assert (out / "models" / "round_000.pt").read_bytes() == checkpoint  # nothing to retrain


def test_damaged_checkpoint_is_set_aside_and_trained_again(finished, tmp_path, monkeypatch):
    cfg, original = finished
    out = copy_of(finished, tmp_path)
    path = out / "models" / "round_000.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    calls = counting_simulate(monkeypatch)
    state = campaign(str(cfg), str(out))

    assert calls == [] and state["status"] == "finished"
    assert len(state["repairs"]) == 1 and "round_000.pt: checksum mismatch" in state["repairs"][0]
    assert "trained again" in state["repairs"][0]
    again = torch.load(path, weights_only=True)
    before = torch.load(original / "models" / "round_000.pt", weights_only=True)
    for key, value in before["state_dict"].items():
        assert torch.equal(again["state_dict"][key], value), key  # same start, same data, same weights
    assert CampaignStore(out).read_model_index()["round_000"]["sha256"] == file_sha256(path)
    assert [p.name.split(".")[0] for p in (out / "quarantine").iterdir()] == ["round_000"]


def test_a_resumed_flow_simulates_nothing_that_finished_and_keeps_its_timings(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, rounds=1)
    out = tmp_path / "camp"

    def crash(*args, **kwargs):
        raise RuntimeError("validation crashed")

    monkeypatch.setattr(learn, "validate_round", crash)
    with pytest.raises(RuntimeError, match="validation crashed"):
        campaign(str(cfg), str(out))
    monkeypatch.undo()
    ledger = CampaignStore(out).read_ledger()
    assert set(ledger["status"]) == {"done"}
    from closedloop.lab.config import load_campaign_config

    config = load_campaign_config(cfg)
    keys = sorted(steps.simulation_cache_key(config, json.loads(p)) for p in ledger["parameters"])
    assert keys == sorted(f"simulate-{cid}-cpu" for cid in ledger["case_id"])  # keyed by scenario hash
    assert sorted(p.name for p in (out / "task-cache").iterdir()) == keys

    calls = counting_simulate(monkeypatch)
    state = campaign(str(cfg), str(out))
    assert state["status"] == "finished" and calls == []  # a done case is validated, not submitted again
    after = CampaignStore(out).read_ledger()
    # the cached rows carry the original timings
    pd.testing.assert_series_equal(after["sim_seconds"], ledger["sim_seconds"])


def test_second_campaign_on_a_busy_directory_is_refused(tmp_path):
    import subprocess
    import sys

    from closedloop.lab.lock import CampaignLocked

    cfg = tiny_config(tmp_path, rounds=1)
    out = tmp_path / "camp"
    hold = ("import sys\nfrom closedloop.lab.lock import campaign_lock\n"
            "with campaign_lock(sys.argv[1], owner='first-run'):\n    print('held', flush=True)\n    sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(CampaignLocked, match=rf"{out}: campaign directory is in use by pid {proc.pid} on host"):
            campaign(str(cfg), str(out))
        assert not (out / "ledger.parquet").exists() and not (out / "campaign.json").exists()
        from typer.testing import CliRunner

        from closedloop.cli import app

        res = CliRunner().invoke(app, ["campaign", "run", str(cfg), "--dir", str(out)])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and "error:" in text and f"pid {proc.pid}" in text and "in use" in text
    finally:
        proc.kill()
        proc.wait()
