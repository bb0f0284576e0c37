"""Groups A and B of a concept: done cases split by a query on one design parameter.

A: ``p >= split`` for a concept toward "high" (``p < split`` toward "low"), B the rest; split =
median by default. The base cases, the B cases farthest from the split, are held out of the
direction: they are the cases steering is tried on.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from closedloop.lab.steering.config import SteeringConfig
from closedloop.lab.steering.opened import SteeringCampaign
from closedloop.simulators import Scenario


@dataclass
class Groups:
    """Cases of regime A (the concept) and B, the held-out base cases and the target value."""

    concept: str
    parameter: str
    split: float
    query_a: str
    query_b: str
    a: pd.DataFrame  # case_id + parameter columns
    b: pd.DataFrame  # without the base cases
    base: pd.DataFrame
    target_value: float  # mean of the parameter over group A


def case_parameters(ledger: pd.DataFrame) -> pd.DataFrame:
    """Done cases as a table: case_id and one column per design parameter."""
    done = ledger.cases.done()
    rows = [{"case_id": cid, **p} for cid, p in zip(done["case_id"], done.cases.params())]
    return pd.DataFrame(rows)


def select_groups(campaign: SteeringCampaign, config: SteeringConfig) -> Groups:
    """Split the done cases by a query on the concept's parameter; hold out base cases from B."""
    table = case_parameters(campaign.store.read_ledger())
    p = config.concept
    if len(table) == 0:
        raise ValueError("campaign_dir: the ledger holds no done case to build a concept from")
    split = float(table[p].median()) if config.split is None else config.split
    hi, lo = f"`{p}` >= {split!r}", f"`{p}` < {split!r}"
    query_a, query_b = (hi, lo) if config.toward == "high" else (lo, hi)
    a, b = table.query(query_a), table.query(query_b)
    for label, group, query in (("A", a, query_a), ("B", b, query_b)):
        if len(group) == 0:
            raise ValueError(f"split: group {label} ({query}) is empty among {len(table)} done cases; "
                             f"{p} ranges over [{table[p].min():.4g}, {table[p].max():.4g}]")
    if len(b) < config.base_cases + 1:
        raise ValueError(f"base_cases: group B ({query_b}) has {len(b)} cases; {config.base_cases} held out "
                         "would leave none to measure the direction")
    far = (b[p] - split).abs().sort_values(ascending=False).index[:config.base_cases]
    return Groups(concept=config.name, parameter=p, split=split, query_a=query_a, query_b=query_b, a=a,
                  b=b.drop(index=far), base=b.loc[far], target_value=float(a[p].mean()))


def group_scenarios(campaign: SteeringCampaign, group: pd.DataFrame) -> list[Scenario]:
    names = [q.name for q in campaign.design.parameters]
    return [campaign.scenario_for({n: float(r[n]) for n in names}) for _, r in group.iterrows()]
