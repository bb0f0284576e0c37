"""Targets: each base case moved to the target regime (p = mean of group A), and its reference
simulation, cached in ``steering/cases/`` by case id."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from closedloop.lab.campaign.simulation import check_finite
from closedloop.lab.steering.groups import Groups
from closedloop.lab.steering.opened import SteeringCampaign
from closedloop.lab.store import file_sha256, read_case, reference_case, write_case
from closedloop.simulators import Scenario, simulate


@dataclass
class Target:
    base_case: str
    base_parameters: dict[str, float]
    target_parameters: dict[str, float]
    scenario: Scenario  # the base case moved to the target regime

    @property
    def case_id(self) -> str:
        return self.scenario.case_id()


def target_scenarios(campaign: SteeringCampaign, groups: Groups) -> list[Target]:
    """Each base case with the concept's parameter set to the target regime's value."""
    names = [q.name for q in campaign.design.parameters]
    out = []
    for _, row in groups.base.iterrows():
        base = {n: float(row[n]) for n in names}
        target = {**base, groups.parameter: groups.target_value}
        try:
            scenario = campaign.scenario_for(target)
        except ValueError as err:
            raise ValueError(f"split: base case {row['case_id']} moved to {groups.parameter} = "
                             f"{groups.target_value:.4g} is not a valid scenario ({err})") from None
        out.append(Target(str(row["case_id"]), base, target, scenario))
    return out


def simulate_target(steering_dir: str | Path, scenario: Scenario, device: str = "cpu", seed: int = 0
                    ) -> dict[str, Any]:
    """The target regime's reference simulation, written to ``steering/cases/<id>.parquet`` once.

    A case file already there (or in the campaign's own cases/) is reused, never simulated again.
    """
    case_id = scenario.case_id()
    own = Path(steering_dir) / "cases" / f"{case_id}.parquet"
    campaign_case = Path(steering_dir).parent / "cases" / f"{case_id}.parquet"
    for path in (own, campaign_case):
        if path.is_file():
            return {"case_id": case_id, "path": str(path), "sha256": file_sha256(path), "reused": True}
    result = simulate(scenario, device=device)
    check_finite(case_id, result)
    sha = write_case(own, reference_case(scenario, result, seed=seed, producer_note="steering target"))
    return {"case_id": case_id, "path": str(own), "sha256": sha, "reused": False}


def read_references(targets: list[Target], rows: list[dict[str, Any]]) -> list[torch.Tensor]:
    by_id = {r["case_id"]: r for r in rows}
    return [read_case(by_id[t.case_id]["path"]).plane for t in targets]
