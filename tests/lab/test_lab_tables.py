"""Numbers in the lab's tables, and artifact keys that never mix two campaigns."""
from __future__ import annotations

import math
import re
from pathlib import Path

from closedloop.lab.store import CampaignStore
from closedloop.lab.tables import significant


def test_four_significant_digits():
    assert significant(0.0123456) == 0.01235 and significant(1234567.0) == 1235000.0
    assert significant(math.nan) is None and significant(3) == 3 and significant("x") == "x"
    assert significant(True) is True


def test_artifact_keys_name_the_campaign_and_its_directory(tmp_path: Path):
    a, b = CampaignStore(tmp_path / "a"), CampaignStore(tmp_path / "b")
    ka, kb = a.artifact_key("smoke", "round", 0, "cases"), b.artifact_key("smoke", "round", 0, "cases")
    assert ka != kb and ka.startswith("smoke-") and ka.endswith("-round-0-cases")
    assert ka == CampaignStore(tmp_path / "x" / ".." / "a").artifact_key("smoke", "round", 0, "cases")
    assert re.fullmatch(r"[a-z0-9-]+", a.artifact_key("Hall_Big", "steer", "inlet_speed_high"))
