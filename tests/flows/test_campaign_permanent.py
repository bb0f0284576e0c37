"""Permanent errors (bad input, memory exhausted) are recorded at once; transient ones are retried."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from closedloop.flows.campaign import campaign
from closedloop.lab.campaign import simulation
from closedloop.lab.campaign.simulation import is_permanent
from closedloop.simulators.budget import ScenarioTooLarge
from tests.conftest import fast_config_text

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.mark.parametrize("error, permanent", [
    (ScenarioTooLarge("room.cell_size: too many cells"), True), (ValueError("inlet 0 opens onto a solid"), True),
    (MemoryError(), True), (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB"), True),
    (RuntimeError("solver diverged"), False), (FloatingPointError("NaN"), False), (TimeoutError(), False),
])
def test_which_errors_are_permanent(error: BaseException, permanent: bool):
    assert is_permanent(error) is permanent


def test_a_permanent_error_is_not_retried(tmp_path: Path, monkeypatch):
    from closedloop.lab import campaign as steps
    from closedloop.lab.config import load_campaign_config
    from closedloop.lab.store import empty_ledger

    cfg = tmp_path / "c.toml"
    cfg.write_text(fast_config_text(retries="2") + "retry_delay_seconds = 0.1\n")
    config = load_campaign_config(cfg)
    ids = sorted(steps.scenario_for(config, p).case_id()
                 for p in steps.propose_round(config, empty_ledger(), 0).parameters)
    attempts: dict[str, int] = {}
    real = simulation.simulate

    def some_fail(scenario, **kwargs):
        cid = scenario.case_id()
        attempts[cid] = attempts.get(cid, 0) + 1
        if cid == ids[0]:
            raise ScenarioTooLarge("room.cell_size: 9 cells need 9 GiB")
        if cid == ids[1]:
            raise RuntimeError("solver diverged")
        return real(scenario, **kwargs)

    monkeypatch.setattr(simulation, "simulate", some_fail)
    state = campaign(str(cfg), str(tmp_path / "camp"), rounds=1)
    ledger = pd.read_parquet(tmp_path / "camp" / "ledger.parquet").set_index("case_id")
    assert state["cases_failed"] == 2 and list(ledger.index[ledger["status"] == "failed"].sort_values()) == ids[:2]
    assert ledger.loc[ids[0], "error"] == "ScenarioTooLarge: room.cell_size: 9 cells need 9 GiB (permanent: not retried)"
    assert attempts[ids[0]] == 1
    assert ledger.loc[ids[1], "error"] == "RuntimeError: solver diverged (failed 3 attempts)"
    assert attempts[ids[1]] == 3
