"""Everything checked before any compute: the opened campaign, its layers, groups and targets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from closedloop.lab.steering.config import SteeringConfig
from closedloop.lab.steering.groups import Groups, select_groups
from closedloop.lab.steering.opened import SteeringCampaign, check_config, open_campaign
from closedloop.lab.steering.targets import Target, target_scenarios


@dataclass
class Prepared:
    """The opened campaign, the layers to search, the two groups and the base cases' targets."""

    campaign: SteeringCampaign
    layers: list[str]
    groups: Groups
    targets: list[Target]


def prepare(campaign_dir: str | Path, config: SteeringConfig) -> Prepared:
    """Open the latest model, check the request, split the ledger's cases by the concept's query.

    Raises ValueError naming the field (``campaign_dir``, ``concept``, ``layers``, ``split``,
    ``base_cases``) for a request that cannot be steered, before anything is simulated or written.
    """
    campaign = open_campaign(campaign_dir)
    layers = check_config(campaign, config)
    groups = select_groups(campaign, config)
    return Prepared(campaign, layers, groups, target_scenarios(campaign, groups))
