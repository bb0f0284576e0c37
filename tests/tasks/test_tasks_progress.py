"""Events and progress artifacts of a campaign, outside a flow run: what each milestone names, and that
neither an unknown event nor an unreachable Prefect goes unnoticed or stops the lab."""
from __future__ import annotations

import pytest

from closedloop.lab.config import load_campaign_config
from closedloop.lab.store import CampaignStore
from closedloop.tasks import progress
from tests.conftest import SMOKE


@pytest.fixture
def sent(monkeypatch):
    events: list[dict] = []
    monkeypatch.setattr(progress, "emit_event", lambda **kw: events.append(kw))
    return events


@pytest.fixture(scope="module")
def config():
    return load_campaign_config(SMOKE)


def test_a_case_event_names_the_campaign_and_the_case(config, tmp_path, sent):
    store = CampaignStore(tmp_path / "camp")
    progress.outcome_events(config, str(store.root), [
        {"case_id": "abc", "status": "done", "sim_seconds": 1.5, "reused": False},
        {"case_id": "def", "status": "failed", "error": "RuntimeError: diverged (failed 3 attempts)"}])
    done, failed = sent
    assert done["event"] == "closedloop.case.done" and failed["event"] == "closedloop.case.failed"
    assert done["resource"] == {"prefect.resource.id": f"closedloop.campaign.{store.artifact_key('smoke')}",
                                "prefect.resource.name": "smoke", "closedloop.campaign-dir": str(store.root.resolve()),
                                "closedloop.mode": "sync"}
    assert done["related"] == [{"prefect.resource.id": "closedloop.case.abc", "prefect.resource.role": "case"}]
    assert done["payload"] == {"sim_seconds": 1.5, "reused": False}
    assert failed["payload"] == {"error": "RuntimeError: diverged (failed 3 attempts)"}


def test_stopping_on_an_error_target_is_told_before_the_stop(config, tmp_path, sent):
    progress.stop_events(config, str(tmp_path), "error target reached: mean validation relative L2 0.009 < 0.01")
    assert [e["event"] for e in sent] == ["closedloop.campaign.error-target-reached", "closedloop.campaign.stopped"]
    sent.clear()
    progress.stop_events(config, str(tmp_path), "round budget spent (2 rounds)")
    assert [e["event"] for e in sent] == ["closedloop.campaign.stopped"]
    assert sent[0]["payload"] == {"reason": "round budget spent (2 rounds)"}


def test_unknown_events_are_refused_and_unreachable_prefect_only_warns(config, tmp_path, monkeypatch, caplog):
    with pytest.raises(ValueError, match="event: 'closedloop.case.lost' is not one of"):
        progress.milestone(config, str(tmp_path), "closedloop.case.lost")

    def down(*args, **kw):
        raise ConnectionError("no server")

    monkeypatch.setattr(progress, "emit_event", down)
    progress.milestone(config, str(tmp_path), "closedloop.checkpoint.written", checkpoint="round_000", round=0)
    assert "event closedloop.checkpoint.written not emitted: no server" in caplog.text
    monkeypatch.setattr(progress, "create_progress_artifact", down)
    CampaignStore(tmp_path / "camp")
    assert progress.ProgressArtifacts(config, str(tmp_path / "camp")).update(0) is None
    assert "progress artifact not updated: no server" in caplog.text
