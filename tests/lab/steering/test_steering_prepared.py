"""prepare: a request that cannot be steered is refused by field name before any compute."""
from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.lab import steering


@pytest.mark.parametrize("kwargs, field", [
    ({"concept": "pillar_width"}, "concept"),
    ({"layers": ["closure.nope"]}, "layers"),
    ({"split": 5.0}, "split"),  # every inlet speed is below: group A is empty
    ({"split": 0.1}, "split"),  # group B is empty
    ({"base_cases": 3}, "base_cases"),  # three low cases, all held out: nothing left for B
])
def test_bad_requests_name_the_field(camp: Path, no_simulation, kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        steering.prepare(camp, steering.SteeringConfig(**kwargs))
    assert not (camp / "steering" / "experiments.parquet").exists()
