"""The ledger's journal: truncate, corrupt or delete the ledger, repair it, and it is the same."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from closedloop.cli import app
from closedloop.lab import journal
from closedloop.lab.campaign.audit import repair_ledger
from closedloop.lab.store import CampaignStore, IntegrityError


def filled(root: Path) -> CampaignStore:
    """A ledger written the way a campaign writes it: proposals, outcomes, errors, a replacement."""
    store = CampaignStore(root)
    store.upsert([{"case_id": f"c{i}", "round": 0, "status": "proposed", "strategy": "sobol",
                   "parameters": json.dumps({"x": i / 4})} for i in range(4)])
    store.upsert([{"case_id": "c0", "status": "done", "sim_seconds": 1.25, "case_sha256": "ab" * 32},
                  {"case_id": "c1", "status": "failed", "error": "RuntimeError: diverged (failed 3 attempts)"}])
    store.upsert([{"case_id": "c0", "rel_l2": 0.5, "log_rel_l2": math.log(0.5), "validated_by": "initial"}])
    ledger = store.read_ledger()
    store.write_ledger(ledger[ledger["case_id"] != "c3"])
    store.upsert([{"case_id": "c4", "round": 1, "status": "proposed", "strategy": "error",
                   "parameters": json.dumps({"x": 0.9}), "sim_seconds": float("nan")}])
    return store


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "delete"])
def test_repair_gives_back_the_same_ledger(tmp_path: Path, damage: str):
    store = filled(tmp_path)
    before = store.read_ledger()
    assert list(before["case_id"]) == ["c0", "c1", "c2", "c4"]
    pd.testing.assert_frame_equal(store.rebuild_ledger(), before)
    data = store.ledger_path.read_bytes()
    if damage == "truncate":
        store.ledger_path.write_bytes(data[: len(data) // 2])
    elif damage == "corrupt":
        store.ledger_path.write_bytes(data[:100] + b"\x00" * 64 + data[164:])
    else:
        store.ledger_path.unlink()
    if damage != "delete":
        with pytest.raises(IntegrityError, match="campaign repair"):
            store.read_ledger()
    line = repair_ledger(store)
    assert "rebuilt from ledger.journal (4 cases)" in line
    pd.testing.assert_frame_equal(store.read_ledger(), before)
    assert repair_ledger(store).endswith("intact (4 cases, as its journal says)")
    if damage != "delete":
        assert len(list(store.quarantine_dir.iterdir())) == 1


def test_a_torn_last_line_is_skipped_and_an_earlier_one_refused(tmp_path: Path):
    store = filled(tmp_path)
    before = store.read_ledger()
    with store.journal_path.open("a") as f:
        f.write('{"op": "upsert", "rows": [{"case_id": "c9"')  # killed while appending
    pd.testing.assert_frame_equal(store.rebuild_ledger(), before)
    lines = store.journal_path.read_text().splitlines()
    store.journal_path.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match="line 2 is damaged"):
        journal.changes(store.journal_path)


def test_cli_repair(tmp_path: Path):
    store = filled(tmp_path / "camp")
    before = store.read_ledger()
    store.ledger_path.write_bytes(b"PAR1 not really")
    result = CliRunner().invoke(app, ["campaign", "repair", str(tmp_path / "camp")])
    assert result.exit_code == 0, result.output
    assert "rebuilt from ledger.journal" in " ".join(result.output.split())
    pd.testing.assert_frame_equal(store.read_ledger(), before)
    missing = CliRunner().invoke(app, ["campaign", "repair", str(tmp_path)])
    assert missing.exit_code == 2 and "no ledger.journal here" in " ".join(missing.output.split())
