"""The scenario's source: a static position or a trajectory, validated by field (waypoints, room, solids)."""
from __future__ import annotations

import pytest

from sim_test_scenarios import MOVING
from sim_test_scenarios import room_with as room


@pytest.mark.parametrize("bad, field", [
    ({**MOVING, "x": 1.0}, "either x, y, z or a trajectory"),
    ({**MOVING, "trajectory": [{"t": 0.0, "x": 1.5, "y": 1.5, "z": 1.25}]}, "at least 2 waypoints"),
    ({**MOVING, "trajectory": [{"t": 5.0, "x": 1.5, "y": 1.5, "z": 1.25},
                               {"t": 5.0, "x": 2.5, "y": 1.5, "z": 1.25}]}, "increase strictly"),
    ({**MOVING, "trajectory": [{"t": 0.0, "x": 2.0, "y": 3.0, "z": 1.25},
                               {"t": 9.0, "x": 8.0, "y": 3.0, "z": 1.25}]}, "source.trajectory.*pillar"),
    ({**MOVING, "trajectory": [{"t": 0.0, "x": 2.0, "y": 5.0, "z": 1.25},
                               {"t": 9.0, "x": 12.0, "y": 5.0, "z": 1.25}]}, "outside the room"),
    ({"x": 2.5, "y": 4.0, "z": 1.25, "rate": 1.0, "shape": "gaussian"}, "sigma"),
])
def test_bad_sources_are_rejected_naming_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        room(source=bad)
