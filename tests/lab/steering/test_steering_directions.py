"""Concept directions on a campaign: one steering run at a time holds steering/."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.lab import steering


def test_a_second_steering_run_on_the_same_campaign_is_refused(camp: Path, no_simulation):
    from closedloop.lab.lock import CampaignLocked

    campaign = steering.open_campaign(camp)
    with steering.hold_steering(campaign):
        with pytest.raises(CampaignLocked, match="steering"):
            with steering.hold_steering(steering.open_campaign(camp)):
                pass
