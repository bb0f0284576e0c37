"""Tasks of the asynchronous campaign, called as plain functions: a proposal is in the ledger before it
is handed out, and arrivals are validated by the model that exists when they arrive."""
from __future__ import annotations

import json

import pytest

from closedloop.lab.store import CampaignStore
from closedloop.tasks import campaign_async
from tests.lab.planner_ledgers import planner_config


@pytest.fixture(scope="module")
def config():
    return planner_config().with_overrides(**{"campaign.mode": "async", "budget.max_cases": 5})


def test_a_proposal_is_stored_before_it_is_handed_out(config, tmp_path):
    store = CampaignStore(tmp_path / "camp")
    first = campaign_async.propose_next.fn(config, str(store.root), 3)
    ledger = store.read_ledger()
    # the initial design (4 Sobol cases, all at once), stored as proposed, round 0
    assert [c["case_id"] for c in first] == ledger["case_id"].tolist() and len(first) == 4
    assert set(ledger["status"]) == {"proposed"} and set(ledger["round"]) == {0}
    assert [json.loads(p) for p in ledger["parameters"]] == [c["params"] for c in first]
    # the budget leaves one more, whatever is asked for
    more = campaign_async.propose_next.fn(config, str(store.root), 3)
    assert len(more) == 1 and len(store.read_ledger()) == 5
    assert campaign_async.validate_arrivals.fn(config, str(store.root), []) == []
